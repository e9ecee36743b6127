/**
 * blackbox_exporter's fail_if_body_json_matches_cel / fail_if_body_json_not_matches_cel with
 * @bufbuild/cel: the body parsed as JSON is the variable `body` (CEL type dyn), in CEL's standard
 * environment only, as blackbox's `cel.NewEnv(cel.Variable("body", cel.DynType))`. JSON numbers
 * are doubles and objects are maps, as Go's encoding/json gives them to cel-go.
 *
 * blackbox compiles (parses and type-checks) the expression when it loads its file; @bufbuild/cel
 * has no exported checker, so celProblem() refuses what cel-go's checker would here: a syntax
 * error, a reference to any variable but `body` (and a macro's own variables), a function the
 * standard environment does not have.
 */
import { celEnv, CelScalar, isCelError, parse, plan } from "@bufbuild/cel";

const ENV = celEnv({ variables: { body: CelScalar.DYN } });

/** Type names the standard environment declares as identifiers (`type(x) == int`). */
const TYPE_IDENTS = new Set(["int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"]);

/** Minimal shape of @bufbuild/cel-spec's Expr as far as the walk below reads it. */
interface ExprNode {
  exprKind:
    | { case: "identExpr"; value: { name: string } }
    | { case: "selectExpr"; value: { operand?: ExprNode } }
    | { case: "callExpr"; value: { function: string; target?: ExprNode; args: ExprNode[] } }
    | { case: "listExpr"; value: { elements: ExprNode[] } }
    | { case: "structExpr"; value: { messageName: string; entries: { keyKind: { case: string; value?: unknown }; value?: ExprNode }[] } }
    | { case: "comprehensionExpr"; value: { iterVar: string; iterVar2: string; accuVar: string; iterRange?: ExprNode; accuInit?: ExprNode; loopCondition?: ExprNode; loopStep?: ExprNode; result?: ExprNode } }
    | { case: "constExpr" | undefined; value?: unknown };
}

/** The first reference cel-go's checker would refuse, as its message; null when none. */
function undeclared(e: ExprNode | undefined, scope: ReadonlySet<string>): string | null {
  if (!e) return null;
  const k = e.exprKind;
  switch (k.case) {
    case "identExpr":
      return scope.has(k.value.name) || TYPE_IDENTS.has(k.value.name) ? null : `undeclared reference to '${k.value.name}'`;
    case "selectExpr":
      return undeclared(k.value.operand, scope);
    case "callExpr": {
      const f = k.value.function;
      // Operators (_==_, _&&_, _[_], @in, !_ ...) are the planner's own or standard.
      if (!/^[_@!-]/.test(f) && !ENV.funcs.find(f)) return `undeclared reference to '${f}'`;
      for (const a of [k.value.target, ...k.value.args]) {
        const p = undeclared(a, scope);
        if (p) return p;
      }
      return null;
    }
    case "listExpr":
      for (const x of k.value.elements) {
        const p = undeclared(x, scope);
        if (p) return p;
      }
      return null;
    case "structExpr":
      if (k.value.messageName) return `undeclared reference to '${k.value.messageName}'`;
      for (const en of k.value.entries) {
        const p = (en.keyKind.case === "mapKey" ? undeclared(en.keyKind.value as ExprNode, scope) : null) ?? undeclared(en.value, scope);
        if (p) return p;
      }
      return null;
    case "comprehensionExpr": {
      const c = k.value;
      const outer = undeclared(c.iterRange, scope) ?? undeclared(c.accuInit, scope);
      if (outer) return outer;
      const inner = new Set([...scope, c.iterVar, c.accuVar, ...(c.iterVar2 ? [c.iterVar2] : [])]);
      return undeclared(c.loopCondition, inner) ?? undeclared(c.loopStep, inner) ?? undeclared(c.result, inner);
    }
    default:
      return null;
  }
}

/**
 * Why `expr` would not compile in blackbox's CEL environment, or null when it does.
 * blackbox's own message is `"Could not compile CEL program" expression="<expr>"`.
 */
export function celProblem(expr: string): string | null {
  if (expr.trim() === "") return "empty expression";
  try {
    return undeclared(parse(expr).expr as unknown as ExprNode, new Set(["body"]));
  } catch (e) {
    return (e as Error).message;
  }
}

/** A compiled expression: evaluates against a parsed JSON body. */
export type CelProgram = (body: unknown) => { value: unknown } | { error: string };

const programs = new Map<string, CelProgram>();

/**
 * The compiled program of `expr`, cached per expression (the module's expressions are few and
 * come from the probe file). @throws Error when it does not parse
 */
export function celProgram(expr: string): CelProgram {
  let p = programs.get(expr);
  if (!p) {
    const run = plan(ENV, parse(expr));
    p = (body) => {
      const r = run({ body: body as never });
      return isCelError(r) ? { error: r.message } : { value: r };
    };
    if (programs.size > 256) programs.clear();
    programs.set(expr, p);
  }
  return p;
}

/** JSON as cel-go sees Go's decoding of it: objects as maps (a key named __proto__ stays a key). */
export function jsonForCel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(jsonForCel);
  if (v !== null && typeof v === "object") return new Map(Object.entries(v).map(([k, x]) => [k, jsonForCel(x)]));
  return v;
}
