/** ProberMesh version, reported by `-v`, in heartbeats and in prober_agent_is_alive{version}. */
export const VERSION = "0.8.0";

// Set by scripts/build.ts (`bun build --define`); absent when running from source.
declare const PROBERMESH_COMMIT: string;
declare const PROBERMESH_BUILD_DATE: string;

/** The git commit a binary was built from ("" from source). */
export const COMMIT = typeof PROBERMESH_COMMIT === "string" ? PROBERMESH_COMMIT : "";
/** When a binary was built, ISO 8601 UTC ("" from source). */
export const BUILD_DATE = typeof PROBERMESH_BUILD_DATE === "string" ? PROBERMESH_BUILD_DATE : "";

/** The `-v` line: "0.4.0 (commit 1a2b3c4, built 2026-11-23T12:00:00Z)". */
export function versionLine(): string {
  return `${VERSION} (commit ${COMMIT || "unknown"}, built ${BUILD_DATE || "from source"})`;
}
