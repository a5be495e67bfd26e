/**
 * Hand-rolled SVG charts for what operators would rather look at than read: opt-out propagation lag
 * per day against the legal clocks, stacked daily counts (operations by kind, API calls by
 * connection), and each connection's budget. Every mark has a tooltip; every chart a text label.
 */
import type { ReactNode } from "react";
import { formatCount, formatDuration, percent } from "../format";

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = [
  "#0072b2",
  "#e69f00",
  "#009e73",
  "#cc79a7",
  "#56b4e9",
  "#d55e00",
  "#8c6d1f",
  "#000000",
];

const W = 640;
const H = 220;
const M = { top: 12, right: 96, bottom: 26, left: 56 };
const plotW = W - M.left - M.right;
const plotH = H - M.top - M.bottom;

const shortDay = (date: string): string => date.slice(5); // MM-DD

/** About seven axis labels, counted from the last (today) so it always has one. */
const everyNth = (i: number, n: number): boolean => (n - 1 - i) % Math.max(1, Math.ceil(n / 7)) === 0;

export type LagPoint = { date: string; p50_ms: number | null; p99_ms: number | null; count: number };

/** Lag per day on a log scale, p50 and p99, with each legal clock as a line it must stay under. */
export function LagChart({
  points,
  clocks,
}: {
  points: LagPoint[];
  clocks: { name: string; limit_ms: number }[];
}): ReactNode {
  const values = points.flatMap((p) => [p.p50_ms, p.p99_ms]).filter((v): v is number => v !== null && v > 0);
  const maxClock = clocks.reduce((m, c) => Math.max(m, c.limit_ms), 0);
  const lo = Math.min(1_000, ...values);
  const hi = Math.max(maxClock, ...values) * 1.5;
  const y = (ms: number): number =>
    M.top +
    plotH -
    ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const step = points.length > 1 ? plotW / (points.length - 1) : 0;
  const x = (i: number): number => M.left + (points.length > 1 ? i * step : plotW / 2);
  const ticks = [100, 1_000, 60_000, 3_600_000, 86_400_000, 30 * 86_400_000, 365 * 86_400_000].filter(
    (t) => t >= lo && t <= hi,
  );
  // Clocks with the same limit share one line (CAN-SPAM and CASL: 10 business days).
  const limits = [...new Set(clocks.map((c) => c.limit_ms))].map((limit_ms) => ({
    limit_ms,
    names: clocks.filter((c) => c.limit_ms === limit_ms).map((c) => c.name),
  }));
  const line = (key: "p50_ms" | "p99_ms"): string =>
    points
      .map((p, i) => ({ v: p[key], i }))
      .filter((p): p is { v: number; i: number } => p.v !== null)
      .map((p, k) => `${k === 0 ? "M" : "L"}${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`)
      .join(" ");
  const measured = points.filter((p) => p.count > 0).length;
  const worst = values.length > 0 ? Math.max(...values) : null;
  const label =
    measured === 0
      ? "No opt-out was applied in these days, so there is no lag to show."
      : `Opt-out propagation lag per day over ${points.length} days; the worst p99 is ${formatDuration(worst)}, against legal clocks of ${clocks.map((c) => `${c.name} ${formatDuration(c.limit_ms)}`).join(", ")}.`;
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
        {ticks.map((t) => (
          <g key={t}>
            <line className="grid" x1={M.left} x2={M.left + plotW} y1={y(t)} y2={y(t)} />
            <text className="tick" x={M.left - 6} y={y(t) + 4} textAnchor="end">
              {formatDuration(t)}
            </text>
          </g>
        ))}
        {limits.map((c) => (
          <g key={c.limit_ms}>
            <title>{c.names.join("; ")}</title>
            <line className="clock" x1={M.left} x2={M.left + plotW} y1={y(c.limit_ms)} y2={y(c.limit_ms)} />
            <text className="clock-label" x={M.left + plotW + 6} y={y(c.limit_ms) + 4}>
              {`${formatDuration(c.limit_ms)} clock`}
            </text>
          </g>
        ))}
        {points.map((p, i) =>
          everyNth(i, points.length) ? (
            <text key={p.date} className="tick" x={x(i)} y={H - 8} textAnchor="middle">
              {shortDay(p.date)}
            </text>
          ) : null,
        )}
        <path className="series" d={line("p99_ms")} stroke={PALETTE[5]} />
        <path className="series" d={line("p50_ms")} stroke={PALETTE[0]} />
        {points.map((p, i) =>
          (["p50_ms", "p99_ms"] as const).map((key) => {
            const v = p[key];
            return v === null ? null : (
              <circle
                key={`${p.date}-${key}`}
                cx={x(i)}
                cy={y(v)}
                r={3}
                fill={key === "p50_ms" ? PALETTE[0] : PALETTE[5]}
              >
                <title>{`${p.date} ${key === "p50_ms" ? "p50" : "p99"}: ${formatDuration(v)} (${formatCount(p.count)} opt-outs)`}</title>
              </circle>
            );
          }),
        )}
        {measured === 0 ? (
          <text className="tick" x={M.left + plotW / 2} y={M.top + plotH / 2} textAnchor="middle">
            No opt-outs applied in this period
          </text>
        ) : null}
      </svg>
      <figcaption className="legend">
        <LegendItem color={PALETTE[0]!} label="p50" />
        <LegendItem color={PALETTE[5]!} label="p99" />
        <LegendItem
          color="#c21f2c"
          label={`legal clocks: ${limits.map((c) => `${formatDuration(c.limit_ms)} ${c.names.map((n) => n.split(":")[0] ?? n).join(", ")}`).join("; ")}`}
          dashed
        />
      </figcaption>
    </figure>
  );
}

function LegendItem({ color, label, dashed }: { color: string; label: string; dashed?: boolean }): ReactNode {
  return (
    <span className="legend-item">
      <svg width="18" height="10" aria-hidden="true">
        <line
          x1="0"
          x2="18"
          y1="5"
          y2="5"
          stroke={color}
          strokeWidth="3"
          strokeDasharray={dashed === true ? "4 3" : undefined}
        />
      </svg>
      {label}
    </span>
  );
}

export type StackedSeries = { key: string; label: string };

/** One bar per day, stacked by series (operations by kind, calls by connection). */
export function StackedBars({
  days,
  series,
  valueOf,
  unit,
}: {
  days: string[];
  series: StackedSeries[];
  valueOf: (day: number, key: string) => number;
  unit: string;
}): ReactNode {
  const totals = days.map((_, d) => series.reduce((sum, s) => sum + valueOf(d, s.key), 0));
  const max = niceMax(Math.max(0, ...totals));
  const band = plotW / Math.max(1, days.length);
  const barW = Math.max(4, Math.min(36, band * 0.7));
  const y = (v: number): number => M.top + plotH - (max === 0 ? 0 : (v / max) * plotH);
  const ticks = max === 0 ? [0] : [0, max / 2, max];
  const sum = totals.reduce((a, b) => a + b, 0);
  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={`${formatCount(sum)} ${unit} over ${days.length} days, by day and ${series.map((s) => s.label).join(", ")}.`}
      >
        {ticks.map((t) => (
          <g key={t}>
            <line className="grid" x1={M.left} x2={M.left + plotW} y1={y(t)} y2={y(t)} />
            <text className="tick" x={M.left - 6} y={y(t) + 4} textAnchor="end">
              {formatCount(Math.round(t))}
            </text>
          </g>
        ))}
        {days.map((day, d) => {
          let base = 0;
          const cx = M.left + band * d + band / 2;
          return (
            <g key={day}>
              {series.map((s, k) => {
                const v = valueOf(d, s.key);
                if (v <= 0) return null;
                const top = y(base + v);
                const height = y(base) - top;
                base += v;
                return (
                  <rect
                    key={s.key}
                    x={cx - barW / 2}
                    y={top}
                    width={barW}
                    height={Math.max(height, 1)}
                    fill={PALETTE[k % PALETTE.length]}
                  >
                    <title>{`${day} ${s.label}: ${formatCount(v)}`}</title>
                  </rect>
                );
              })}
              {everyNth(d, days.length) ? (
                <text className="tick" x={cx} y={H - 8} textAnchor="middle">
                  {shortDay(day)}
                </text>
              ) : null}
            </g>
          );
        })}
        {sum === 0 ? (
          <text className="tick" x={M.left + plotW / 2} y={M.top + plotH / 2} textAnchor="middle">
            Nothing in this period
          </text>
        ) : null}
      </svg>
      <figcaption className="legend">
        {series.map((s, k) => (
          <span className="legend-item" key={s.key}>
            <span className="swatch" style={{ background: PALETTE[k % PALETTE.length] }} aria-hidden="true" />
            {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

function niceMax(v: number): number {
  if (v <= 0) return 0;
  const magnitude = 10 ** Math.floor(Math.log10(v));
  const n = v / magnitude;
  const nice = n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10;
  return nice * magnitude;
}

export type BudgetRow = {
  id: string;
  label: string;
  used: number;
  quota: number | null;
  pausedUntil: string | null;
};

/** Each connection's daily call budget: used against the quota. */
export function BudgetBars({ rows }: { rows: BudgetRow[] }): ReactNode {
  return (
    <div className="budget-bars">
      {rows.map((r) => {
        if (r.quota === null)
          return (
            <div className="budget-row" key={r.id}>
              <div className="budget-label">{r.label}</div>
              <div className="budget-value">
                {formatCount(r.used)} calls <span className="muted">(no daily quota)</span>
              </div>
            </div>
          );
        const share = r.quota > 0 ? Math.min(1, r.used / r.quota) : 0;
        const tone = share >= 0.95 || r.pausedUntil !== null ? "bad" : share >= 0.8 ? "warn" : "ok";
        return (
          <div className="budget-row" key={r.id}>
            <div className="budget-label">{r.label}</div>
            <div
              className="meter"
              role="meter"
              aria-label={`${r.label}: API budget used today`}
              aria-valuemin={0}
              aria-valuemax={r.quota}
              aria-valuenow={r.used}
              aria-valuetext={`${formatCount(r.used)} of ${formatCount(r.quota)} calls (${percent(r.used, r.quota)})`}
            >
              <div className={`meter-fill meter-${tone}`} style={{ width: `${(share * 100).toFixed(2)}%` }} />
            </div>
            <div className="budget-value">
              {formatCount(r.used)} / {formatCount(r.quota)}{" "}
              <span className="muted">({percent(r.used, r.quota)})</span>
            </div>
          </div>
        );
      })}
    </div>
  );
}
