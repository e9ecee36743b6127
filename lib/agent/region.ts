/**
 * Region discovery for agents started without -agent.region: env PROBER_REGION, then the cloud
 * instance-metadata services, asked in parallel with a 1 s limit each; the first answer wins.
 */

/** One metadata source: how to ask, and how to turn the answer into a region. */
interface MetadataSource {
  cloud: string;
  fetchRegion(signal: AbortSignal): Promise<string>;
}

async function text(url: string, init: RequestInit & { signal: AbortSignal }): Promise<string> {
  const r = await fetch(url, init);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return (await r.text()).trim();
}

/** The documented metadata endpoints of AWS (IMDSv2), GCP, Azure, Alibaba, Tencent and Huawei clouds. */
export const METADATA_SOURCES: MetadataSource[] = [
  {
    cloud: "aws",
    async fetchRegion(signal) {
      const token = await text("http://169.254.169.254/latest/api/token", { method: "PUT", headers: { "X-aws-ec2-metadata-token-ttl-seconds": "60" }, signal });
      return text("http://169.254.169.254/latest/meta-data/placement/region", { headers: { "X-aws-ec2-metadata-token": token }, signal });
    },
  },
  {
    cloud: "gcp",
    async fetchRegion(signal) {
      // "projects/123/zones/us-central1-a" -> "us-central1"
      const zone = await text("http://metadata.google.internal/computeMetadata/v1/instance/zone", { headers: { "Metadata-Flavor": "Google" }, signal });
      return zone.split("/").pop()!.replace(/-[a-z]$/, "");
    },
  },
  {
    cloud: "azure",
    fetchRegion: (signal) => text("http://169.254.169.254/metadata/instance/compute/location?api-version=2021-02-01&format=text", { headers: { Metadata: "true" }, signal }),
  },
  { cloud: "alibaba", fetchRegion: (signal) => text("http://100.100.100.200/latest/meta-data/region-id", { signal }) },
  { cloud: "tencent", fetchRegion: (signal) => text("http://metadata.tencentyun.com/latest/meta-data/placement/region", { signal }) },
  {
    cloud: "huawei",
    async fetchRegion(signal) {
      const j = JSON.parse(await text("http://169.254.169.254/openstack/latest/meta_data.json", { signal })) as { region_id?: string };
      if (!j.region_id) throw new Error("no region_id");
      return j.region_id;
    },
  },
];

/** A discovered region and where it came from. */
export interface RegionSource {
  region: string;
  source: string;
}

/**
 * Finds the agent's region: the flag value, else PROBER_REGION, else the first metadata answer.
 * @param timeoutMs limit per metadata source (docs/flags.md: 1 s)
 * @throws Error listing what was tried when nothing answered
 */
export async function discoverRegion(flagValue: string, env = process.env, sources = METADATA_SOURCES, timeoutMs = 1000): Promise<RegionSource> {
  if (flagValue) return { region: flagValue, source: "flag -agent.region" };
  if (env.PROBER_REGION) return { region: env.PROBER_REGION, source: "env PROBER_REGION" };
  const attempts = sources.map(async (s) => {
    const region = await s.fetchRegion(AbortSignal.timeout(timeoutMs));
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(region)) throw new Error(`unexpected answer "${region.slice(0, 40)}"`);
    return { region, source: `${s.cloud} instance metadata` };
  });
  try {
    return await Promise.any(attempts);
  } catch {
    throw new Error(`no region: -agent.region is empty, PROBER_REGION is unset, and no cloud metadata service (${sources.map((s) => s.cloud).join(", ")}) answered within ${timeoutMs} ms; set -agent.region`);
  }
}
