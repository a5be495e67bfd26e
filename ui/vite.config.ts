/**
 * Builds the admin UI into ui/dist, which the Concord server serves (any page path gets index.html).
 * `npm run dev:ui` serves it with hot reload and sends /api to a running server (CONCORD_URL).
 */
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const api = process.env["CONCORD_URL"] ?? "http://127.0.0.1:8080";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1024 },
  server: { proxy: { "/api": api } },
  preview: { proxy: { "/api": api } },
});
