/** Import boundaries of STYLE.md, checked in CI (`npm run boundaries`). */
module.exports = {
  forbidden: [
    {
      name: "core-is-pure",
      comment: "src/core imports nothing of ours outside itself.",
      severity: "error",
      from: { path: "^src/core/" },
      to: { path: "^src/", pathNot: "^src/core/" },
    },
    {
      name: "planner-imports-core-only",
      comment: "src/planner imports only src/core.",
      severity: "error",
      from: { path: "^src/planner/" },
      to: { path: "^src/", pathNot: "^src/(core|planner)/" },
    },
    {
      name: "connectors-stay-in-their-lane",
      comment: "A connector imports core types and connectors/{connector,http} only.",
      severity: "error",
      from: { path: "^src/connectors/" },
      to: { path: "^src/(store|queue|server|planner|executor|ledger|cli|config|engine|main)" },
    },
    {
      name: "no-connector-imports-another",
      comment: "A connector never imports another connector.",
      severity: "error",
      from: { path: "^src/connectors/([^/]+)/", pathNot: "^src/connectors/(contract|http|emulator-kit)/" },
      to: {
        path: "^src/connectors/([^/]+)/",
        pathNot: ["^src/connectors/$1/", "^src/connectors/(http|contract|emulator-kit)/"],
      },
    },
    {
      name: "emulator-never-imports-its-client",
      comment: "An emulator is written from the vendor's docs, never from our client.",
      severity: "error",
      from: { path: "^src/connectors/([^/]+)/emulator/" },
      to: {
        path: "^src/connectors/",
        pathNot: ["^src/connectors/$1/emulator/", "^src/connectors/emulator-kit/"],
      },
    },
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(node_modules|\\.test\\.ts$)" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".json"] },
  },
};
