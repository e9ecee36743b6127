/**
 * The HTTP kind's server half (lib/probes/kind.ts): validation of pushed HttpResults, cumulative
 * result counters, and the per-window aggregation of docs/aggregation.md "HTTP", published as
 * ProberMesh's gauges. One bucket per (source_region, target_region, target_addr).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { KindIngest, KindWindow, Received } from "../../aggregation/window.ts";
import type { SeriesStore } from "../../metrics/series.ts";
import type { HttpResult } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { checkCommon, seconds } from "../result_common.ts";
import { isFailedReason } from "./failed_reason.ts";

/** HTTP phases of blackbox_exporter / httpstat, in order; the `phase` label's values. */
export const HTTP_PHASES = ["resolve", "connect", "tls", "processing", "transfer"] as const;

/** Latest accepted cert expiry: year 3000, unix seconds. */
const MAX_EXPIRY = 32503680000n;

/** One HTTP (source, target region, URL) over one window (plain data). */
export interface HttpAggregate {
  sourceRegion: string;
  targetRegion: string;
  targetAddr: string;
  results: number;
  /** Phase means over successful results, seconds; undefined when none succeeded. */
  phases?: Record<(typeof HTTP_PHASES)[number], number>;
  /** Status code of the latest result by probe time (0 when no response). */
  statusCode: number;
  /** Earliest certificate expiry seen, unix seconds; 0 when none. */
  certExpiry: number;
  /** Failed results by failed_reason. */
  failedByReason: Map<string, number>;
  /** End of the window, unix ms. */
  windowEndMs: number;
}

/** Checks the numbers of an HTTP result (assignment is checked by the caller). @returns "" or why it is unusable */
export function checkHttpResult(r: HttpResult): string {
  const common = checkCommon(r);
  if (common) return common;
  if (![r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.processingSeconds, r.transferSeconds].every(seconds)) return "phase out of range";
  if (r.statusCode !== 0 && (r.statusCode < 100 || r.statusCode > 599)) return "status_code out of range";
  if (r.failedReason !== "" && !isFailedReason(r.failedReason)) return `unknown failed_reason "${r.failedReason.slice(0, 32)}"`;
  if (r.success !== (r.failedReason === "")) return "success and failed_reason disagree";
  if (r.sslEarliestCertExpiry < 0n || r.sslEarliestCertExpiry > MAX_EXPIRY) return "ssl_earliest_cert_expiry out of range";
  return "";
}

const TARGET = ["source_region", "target_region", "target_addr"] as const;

/** The HTTP metrics on `store` and the ingest that feeds them. */
export function httpIngest(store: SeriesStore): KindIngest<HttpResult> & { latest(): readonly HttpAggregate[] } {
  const failed = store.gauge({
    name: "prober_http_failed", type: "gauge", labelNames: [...TARGET, "failed_reason"],
    help: "HTTP results that failed in the last published aggregation window, by failed_reason.",
    doc: "A reason seen before for the target and absent in this window is set to 0 while the series lives.",
  });
  const duration = store.gauge({
    name: "prober_http_duration_seconds", type: "gauge", labelNames: [...TARGET, "phase"],
    help: "HTTP phase durations in seconds (mean over successful results of the last published window): resolve, connect, tls, processing, transfer.",
    doc: "Absent for a window in which no result succeeded.",
  });
  const status = store.gauge({ name: "prober_http_status_code", type: "gauge", labelNames: TARGET, help: "HTTP status code of the latest result of the last published window (0 when no response)." });
  const certExpiry = store.gauge({ name: "prober_http_ssl_earliest_cert_expiry", type: "gauge", labelNames: TARGET, help: "Earliest TLS certificate NotAfter in the peer chain, unix seconds." });
  const probesTotal = store.counter({ name: "prober_http_probes_total", type: "counter", labelNames: TARGET, help: "HTTP probes (cumulative: every accepted result, backlog included)." });
  const failedTotal = store.counter({
    name: "prober_http_probes_failed_total", type: "counter", labelNames: [...TARGET, "failed_reason"],
    help: "Failed HTTP probes by failed_reason (cumulative); success ratio = 1 - increase(failed) / increase(probes).",
  });
  /** failed_reason values published per target, so that absent ones drop to 0. */
  const reasonsSeen = new Map<string, Set<string>>();
  /** The last published window's aggregates, per target (the web console's HTTP table). */
  const latest = new Map<string, HttpAggregate>();

  return {
    latest: () => [...latest.values()],

    count({ sourceRegion, result: r }: Received<HttpResult>) {
      const l = { source_region: sourceRegion, target_region: r.targetRegion, target_addr: r.url };
      probesTotal.inc(l);
      if (!r.success) failedTotal.inc({ ...l, failed_reason: r.failedReason });
    },

    openWindow(): KindWindow<HttpResult> {
      type Bucket = HttpAggregate & { sums: number[]; ok: number; latestMs: number };
      const buckets = new Map<string, Bucket>();
      return {
        add({ sourceRegion, result: r }) {
          const k = `${sourceRegion}\u0000${r.targetRegion}\u0000${r.url}`;
          let b = buckets.get(k);
          if (!b) {
            b = { sourceRegion, targetRegion: r.targetRegion, targetAddr: r.url, results: 0, statusCode: 0, certExpiry: 0, failedByReason: new Map(), windowEndMs: 0, sums: [0, 0, 0, 0, 0], ok: 0, latestMs: -Infinity };
            buckets.set(k, b);
          }
          b.results++;
          const t = r.time ? timestampMs(r.time) : 0;
          if (t >= b.latestMs) {
            b.latestMs = t;
            b.statusCode = r.statusCode;
          }
          const exp = Number(r.sslEarliestCertExpiry);
          if (exp > 0 && (b.certExpiry === 0 || exp < b.certExpiry)) b.certExpiry = exp;
          if (r.success) {
            b.ok++;
            [r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.processingSeconds, r.transferSeconds].forEach((v, i) => (b.sums[i]! += v));
          } else {
            b.failedByReason.set(r.failedReason, (b.failedByReason.get(r.failedReason) ?? 0) + 1);
          }
        },

        publish(windowEndMs) {
          for (const b of buckets.values()) {
            const l = { source_region: b.sourceRegion, target_region: b.targetRegion, target_addr: b.targetAddr };
            const key = JSON.stringify(l);
            b.windowEndMs = windowEndMs;
            if (b.ok > 0) b.phases = Object.fromEntries(HTTP_PHASES.map((ph, i) => [ph, b.sums[i]! / b.ok])) as HttpAggregate["phases"];
            const { sums: _s, ok: _o, latestMs: _l, ...plain } = b;
            latest.set(key, plain);
            if (latest.size > 100_000) latest.delete(latest.keys().next().value!); // bounded: targets come from the probe file
            let reasons = reasonsSeen.get(key);
            if (!reasons) reasonsSeen.set(key, (reasons = new Set()));
            for (const reason of reasons) if (!b.failedByReason.has(reason)) failed.set({ ...l, failed_reason: reason }, 0);
            for (const [reason, n] of b.failedByReason) {
              reasons.add(reason);
              failed.set({ ...l, failed_reason: reason }, n);
            }
            status.set(l, b.statusCode);
            if (b.certExpiry > 0) certExpiry.set(l, b.certExpiry);
            HTTP_PHASES.forEach((phase, i) => {
              // Honest windows: no success, no phase timings (a failed probe's phases are partial).
              if (b.ok > 0) duration.set({ ...l, phase }, b.sums[i]! / b.ok);
              else duration.remove({ ...l, phase });
            });
          }
        },
      };
    },
  };
}
