/**
 * deploy/grafana/dashboards/*.json are what `npm run dashboards` renders from
 * deploy/grafana/dashboards.ts. (Their queries run against a real Prometheus in prometheus.test.ts.)
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { renderDashboards } from "../scripts/gen-dashboards.ts";
import { ROOT } from "./helpers/procs.ts";

test("the committed dashboard JSON is fresh (run `npm run dashboards`)", () => {
  const rendered = renderDashboards();
  expect([...rendered.keys()].sort()).toEqual(["agents.json", "dns.json", "flows.json", "grpc.json", "http.json", "mesh-overview.json", "pair.json", "tcp.json"]);
  for (const [name, text] of rendered) expect({ name, text: readFileSync(`${ROOT}deploy/grafana/dashboards/${name}`, "utf8") }).toEqual({ name, text });
});
