/** ProberMesh version, reported by `-v`, in heartbeats and in prober_agent_is_alive{version}. */
export const VERSION = "0.2.0";
