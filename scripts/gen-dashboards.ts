/**
 * Writes deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.ts (dashboards as code).
 *
 *   npm run dashboards
 *
 * tests/dashboards.test.ts fails when the committed JSON differs from what this writes.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dashboards } from "../deploy/grafana/dashboards.ts";

const dir = new URL("../deploy/grafana/dashboards/", import.meta.url).pathname;

/** File name -> JSON text as committed. */
export function renderDashboards(): Map<string, string> {
  return new Map(Object.entries(dashboards()).map(([name, d]) => [name, `${JSON.stringify(d, null, 2)}\n`]));
}

if (import.meta.main) {
  for (const [name, text] of renderDashboards()) {
    let old = "";
    try {
      old = readFileSync(`${dir}${name}`, "utf8");
    } catch {
      /* new */
    }
    if (old !== text) {
      writeFileSync(`${dir}${name}`, text);
      console.log(`updated deploy/grafana/dashboards/${name}`);
    }
  }
}
