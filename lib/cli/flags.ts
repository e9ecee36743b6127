/**
 * Go-style command-line flags (`-name value`, `-name=value`, `--name value`, booleans as `-name`
 * or `-name=false`) on top of Node's `util.parseArgs` (strict mode: unknown flags are errors).
 * ProberMesh's flag names contain dots (`-server.rpc.listen.addr`), which is why single-dash long
 * names are normalised to `--name` before parseArgs sees them.
 */
import { parseArgs } from "node:util";
import { formatDurationMs, parseDurationMs } from "./duration.ts";

/** How a flag's text is turned into a value. */
export type FlagKind = "string" | "duration" | "bool" | "number";

/** One flag of a command. Durations are parsed to milliseconds. */
export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** Default, in the flag's text form ("15s", "localhost:6000", "false"). */
  default: string;
  help: string;
  aliases?: string[];
  /** Allowed values for a string flag. */
  choices?: string[];
  /** Lower bound for duration (ms) and number flags, inclusive. */
  min?: number;
  /** Upper bound for number flags, inclusive. */
  max?: number;
  /** A number flag takes whole numbers only. */
  integer?: boolean;
}

/** Parsed flag values: strings, booleans, or numbers (durations in milliseconds). */
export type FlagValues = Record<string, string | number | boolean>;

/** A command-line error; entry scripts print `message` and exit with code 2. */
export class FlagError extends Error {
  override name = "FlagError";
}

/** Outcome of parsing: values, or a request for help/version. */
export type ParsedFlags = { kind: "values"; values: FlagValues } | { kind: "help" } | { kind: "version" };

function convert(spec: FlagSpec, text: string, shown: string): string | number | boolean {
  switch (spec.kind) {
    case "string":
      if (spec.choices && !spec.choices.includes(text)) {
        throw new FlagError(`invalid value "${text}" for flag -${shown}: must be one of ${spec.choices.join(", ")}`);
      }
      return text;
    case "bool":
      if (["true", "1", "t", "TRUE", "True"].includes(text)) return true;
      if (["false", "0", "f", "FALSE", "False"].includes(text)) return false;
      throw new FlagError(`invalid boolean value "${text}" for flag -${shown}`);
    case "duration": {
      let ms: number;
      try {
        ms = parseDurationMs(text);
      } catch (e) {
        throw new FlagError(`invalid value "${text}" for flag -${shown}: ${(e as Error).message}`);
      }
      if (spec.min !== undefined && ms < spec.min) {
        throw new FlagError(`invalid value "${text}" for flag -${shown}: must be at least ${formatDurationMs(spec.min)}`);
      }
      return ms;
    }
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) throw new FlagError(`invalid number "${text}" for flag -${shown}`);
      if (spec.integer && !Number.isInteger(n)) throw new FlagError(`invalid value "${text}" for flag -${shown}: must be a whole number`);
      if (spec.min !== undefined && n < spec.min) throw new FlagError(`invalid value "${text}" for flag -${shown}: must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw new FlagError(`invalid value "${text}" for flag -${shown}: must be at most ${spec.max}`);
      return n;
    }
  }
}

/**
 * Parses argv (without the executable) against the specs.
 * @throws FlagError for an unknown flag, a missing value, a bad value or a stray argument.
 */
export function parseFlags(specs: FlagSpec[], argv: string[]): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) for (const n of [s.name, ...(s.aliases ?? [])]) byName.set(n, s);
  // Normalise: -name[=v] -> --name[=v]; booleans given as --name=v are split out for parseArgs.
  const args: string[] = [];
  const boolTexts = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    if (a === "--") throw new FlagError(`unexpected argument "--"`);
    if (/^-[^-]/.test(a)) a = "-" + a;
    if (!a.startsWith("--")) throw new FlagError(`unexpected argument "${a}" (flags start with -)`);
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (name === "h" || name === "help") return { kind: "help" };
    if (name === "v" || name === "version") return { kind: "version" };
    const spec = byName.get(name);
    if (!spec) throw new FlagError(`flag provided but not defined: -${name} (see -h)`);
    if (spec.kind === "bool") {
      boolTexts.set(name, eq < 0 ? "true" : a.slice(eq + 1));
      continue;
    }
    if (eq < 0) {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      // Joined with "=", as Go's flag package takes the next argument whatever it looks like ("-1").
      args.push(`${a}=${argv[++i]!}`);
    } else args.push(a);
  }
  const options: Record<string, { type: "string" }> = {};
  for (const n of byName.keys()) options[n] = { type: "string" };
  let raw: Record<string, string | boolean | undefined>;
  try {
    raw = parseArgs({ args, options, strict: true, allowPositionals: false }).values as typeof raw;
  } catch (e) {
    const m = /'--?([^' ]+)/.exec((e as Error).message);
    throw new FlagError(m ? `flag needs an argument: -${m[1]}` : (e as Error).message);
  }
  const values: FlagValues = {};
  for (const spec of specs) {
    let text = spec.default;
    let shown = spec.name;
    for (const n of [spec.name, ...(spec.aliases ?? [])]) {
      const given = spec.kind === "bool" ? boolTexts.get(n) : raw[n];
      if (typeof given === "string") {
        text = given;
        shown = n;
      }
    }
    values[spec.name] = convert(spec, text, shown);
  }
  return { kind: "values", values };
}

/** Renders `-h` output in Go's flag package style. */
export function usage(command: string, summary: string, specs: FlagSpec[]): string {
  const lines = [`Usage of ${command}: ${summary}`, ""];
  for (const s of specs) {
    const alias = s.aliases?.length ? ` (alias ${s.aliases.map((a) => "-" + a).join(", ")})` : "";
    const type = s.kind === "bool" ? "" : ` ${s.kind}`;
    lines.push(`  -${s.name}${type}${alias}`);
    lines.push(`        ${s.help}${s.default !== "" ? ` (default "${s.default}")` : ""}`);
  }
  lines.push("  -h    show this help", "  -v    show the version", "");
  return lines.join("\n");
}

/**
 * Parses flags for an entry script: prints help or version and exits 0, or prints the error on
 * stderr and exits 2. Returns the values otherwise.
 */
export function parseFlagsOrExit(command: string, summary: string, version: string, specs: FlagSpec[], argv: string[]): FlagValues {
  try {
    const r = parseFlags(specs, argv);
    if (r.kind === "help") {
      process.stdout.write(usage(command, summary, specs));
      process.exit(0);
    }
    if (r.kind === "version") {
      process.stdout.write(`${command} ${version}\n`);
      process.exit(0);
    }
    return r.values;
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`${command}: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}
