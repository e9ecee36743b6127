/**
 * The server half shared by every "check" kind (http, tcp, dns, grpc): a probe that succeeds or
 * fails with one failed_reason and times named phases, like blackbox_exporter's probers. One
 * definition of their validation, cumulative counters, per-window aggregation
 * (docs/aggregation.md "Check kinds") and metric family, so the kinds cannot drift apart:
 *
 *   prober_<kind>_probes_total{source_region,target_region,target_addr}                  counter
 *   prober_<kind>_probes_failed_total{...,failed_reason}                                 counter
 *   prober_<kind>_failed{...,failed_reason}          failed results of the last window   gauge
 *   prober_<kind>_duration_seconds{...,phase}        phase means over successful results gauge
 *   prober_<kind>_ssl_earliest_cert_expiry{...}      unix seconds (kinds that speak TLS)  gauge
 *   plus an optional "latest value" gauge (HTTP: prober_http_status_code).
 *
 * One bucket per (source_region, target_region, target_addr).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { KindIngest, KindWindow, Received } from "../aggregation/window.ts";
import type { SeriesStore } from "../metrics/series.ts";
import type { Steps } from "../steps.ts";
import { checkCommon, seconds, type CommonResult } from "./result_common.ts";

/** Latest accepted certificate expiry: year 3000, unix seconds. */
const MAX_EXPIRY = 32503680000n;

/** The fields every check kind's result message has (HttpResult, TcpResult, DnsResult, GrpcResult). */
export interface PhasedResult extends CommonResult {
  success: boolean;
  /** "" when success, else one of the kind's failed reasons. */
  failedReason: string;
  /** Earliest certificate NotAfter, unix seconds; 0 without TLS. Absent on kinds without TLS. */
  sslEarliestCertExpiry?: bigint;
}

/** What a check kind tells the shared ingest about itself. */
export interface PhasedSpec<R extends PhasedResult, P extends string = string> {
  /** prober_type: the metric prefix is `prober_<kind>_`. */
  kind: string;
  /** How the kind is named in help texts ("HTTP", "TCP"). */
  title: string;
  /** The `phase` label's values, in order (blackbox_exporter's phase names where it has them). */
  phases: readonly P[];
  /** The result's phase durations in seconds, in `phases` order. */
  phaseSeconds(r: R): number[];
  /** The target_addr label: the address the result names. */
  address(r: R): string;
  /** Every failed_reason with its meaning (the kind's failed_reason.ts). */
  failedReasons: Readonly<Record<string, string>>;
  /** Publish prober_<kind>_ssl_earliest_cert_expiry. */
  tls: boolean;
  /** An extra gauge holding one number of the latest result of a window (HTTP's status code). */
  latestValue?: { name: string; help: string; of(r: R): number };
  /** Kind-specific checks after the shared ones. @returns "" or why the result is unusable */
  check?(r: R): string;
}

/** One (source, target region, target) of a check kind over one published window (plain data). */
export interface PhasedAggregate<P extends string = string> {
  sourceRegion: string;
  targetRegion: string;
  targetAddr: string;
  results: number;
  /** Phase means over successful results, seconds; undefined when none succeeded. */
  phases?: Record<P, number>;
  /** The spec's latestValue of the latest result by probe time (0 when none). */
  latestValue: number;
  /** Earliest certificate expiry seen, unix seconds; 0 when none. */
  certExpiry: number;
  /** Failed results by failed_reason. */
  failedByReason: Map<string, number>;
  /** End of the window, unix ms. */
  windowEndMs: number;
}

/** Checks a pushed result of a check kind (assignment is checked by the caller). @returns "" or why it is unusable */
export function checkPhasedResult<R extends PhasedResult>(spec: PhasedSpec<R>, r: R): string {
  const common = checkCommon(r);
  if (common) return common;
  if (!spec.phaseSeconds(r).every(seconds)) return "phase out of range";
  if (r.failedReason !== "" && !Object.hasOwn(spec.failedReasons, r.failedReason)) return `unknown failed_reason "${r.failedReason.slice(0, 32)}"`;
  if (r.success !== (r.failedReason === "")) return "success and failed_reason disagree";
  const exp = r.sslEarliestCertExpiry ?? 0n;
  if (exp < 0n || exp > MAX_EXPIRY) return "ssl_earliest_cert_expiry out of range";
  return spec.check?.(r) ?? "";
}

const TARGET = ["source_region", "target_region", "target_addr"] as const;

/** The kind's metrics on `store` and the ingest that feeds them; `latest()` is the last window's aggregates (console, API). */
export function phasedIngest<R extends PhasedResult, P extends string>(spec: PhasedSpec<R, P>, store: SeriesStore): KindIngest<R> & { latest(): readonly PhasedAggregate<P>[] } {
  const { kind: k, title: T, phases } = spec;
  const failed = store.gauge({
    name: `prober_${k}_failed`, type: "gauge", labelNames: [...TARGET, "failed_reason"],
    help: `${T} results that failed in the last published aggregation window, by failed_reason.`,
    doc: "A reason seen before for the target and absent in this window is set to 0 while the series lives.",
  });
  const duration = store.gauge({
    name: `prober_${k}_duration_seconds`, type: "gauge", labelNames: [...TARGET, "phase"],
    help: `${T} phase durations in seconds (mean over successful results of the last published window): ${phases.join(", ")}.`,
    doc: "Absent for a window in which no result succeeded.",
  });
  const latestGauge = spec.latestValue && store.gauge({ name: spec.latestValue.name, type: "gauge", labelNames: TARGET, help: spec.latestValue.help });
  const certExpiry = spec.tls ? store.gauge({ name: `prober_${k}_ssl_earliest_cert_expiry`, type: "gauge", labelNames: TARGET, help: `Earliest TLS certificate NotAfter in the peer chain of a ${T} probe, unix seconds.` }) : undefined;
  const probesTotal = store.counter({ name: `prober_${k}_probes_total`, type: "counter", labelNames: TARGET, help: `${T} probes (cumulative: every accepted result, backlog included).` });
  const failedTotal = store.counter({
    name: `prober_${k}_probes_failed_total`, type: "counter", labelNames: [...TARGET, "failed_reason"],
    help: `Failed ${T} probes by failed_reason (cumulative); success ratio = 1 - increase(failed) / increase(probes).`,
  });
  /** failed_reason values published per target, so that absent ones drop to 0. */
  const reasonsSeen = new Map<string, Set<string>>();
  /** The last published window's aggregates, per target. */
  const latest = new Map<string, PhasedAggregate<P>>();

  return {
    latest: () => [...latest.values()],

    count({ sourceRegion, result: r }: Received<R>) {
      const l = { source_region: sourceRegion, target_region: r.targetRegion, target_addr: spec.address(r) };
      probesTotal.inc(l);
      if (!r.success) failedTotal.inc({ ...l, failed_reason: r.failedReason });
    },

    openWindow(): KindWindow<R> {
      type Bucket = PhasedAggregate<P> & { sums: number[]; ok: number; latestMs: number };
      const buckets = new Map<string, Bucket>();
      return {
        add({ sourceRegion, result: r }) {
          const addr = spec.address(r);
          const key = `${sourceRegion}\u0000${r.targetRegion}\u0000${addr}`;
          let b = buckets.get(key);
          if (!b) {
            b = { sourceRegion, targetRegion: r.targetRegion, targetAddr: addr, results: 0, latestValue: 0, certExpiry: 0, failedByReason: new Map(), windowEndMs: 0, sums: phases.map(() => 0), ok: 0, latestMs: -Infinity };
            buckets.set(key, b);
          }
          b.results++;
          const t = r.time ? timestampMs(r.time) : 0;
          if (t >= b.latestMs) {
            b.latestMs = t;
            b.latestValue = spec.latestValue?.of(r) ?? 0;
          }
          const exp = Number(r.sslEarliestCertExpiry ?? 0n);
          if (exp > 0 && (b.certExpiry === 0 || exp < b.certExpiry)) b.certExpiry = exp;
          if (r.success) {
            b.ok++;
            spec.phaseSeconds(r).forEach((v, i) => (b.sums[i]! += v));
          } else {
            b.failedByReason.set(r.failedReason, (b.failedByReason.get(r.failedReason) ?? 0) + 1);
          }
        },

        *publish(windowEndMs): Steps {
          for (const b of buckets.values()) {
            const l = { source_region: b.sourceRegion, target_region: b.targetRegion, target_addr: b.targetAddr };
            const key = JSON.stringify(l);
            b.windowEndMs = windowEndMs;
            if (b.ok > 0) b.phases = Object.fromEntries(phases.map((ph, i) => [ph, b.sums[i]! / b.ok])) as Record<P, number>;
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
            latestGauge?.set(l, b.latestValue);
            if (certExpiry && b.certExpiry > 0) certExpiry.set(l, b.certExpiry);
            phases.forEach((phase, i) => {
              // Honest windows: no success, no phase timings (a failed probe's phases are partial).
              if (b.ok > 0) duration.set({ ...l, phase }, b.sums[i]! / b.ok);
              else duration.remove({ ...l, phase });
            });
            yield;
          }
        },
      };
    },
  };
}
