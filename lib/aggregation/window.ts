/**
 * The aggregation window: results accepted since the last flush. flush() hands them to the
 * aggregate functions and starts a new window.
 */
import type { HttpResult, IcmpResult } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { aggregateHttp, aggregateIcmp, type HttpAggregate, type IcmpAggregate, type Received } from "./aggregate.ts";

/** Buffer of one window's results. */
export class AggregationWindow {
  private icmp: Received<IcmpResult>[] = [];
  private http: Received<HttpResult>[] = [];

  addIcmp(x: Received<IcmpResult>): void {
    this.icmp.push(x);
  }

  addHttp(x: Received<HttpResult>): void {
    this.http.push(x);
  }

  /** Aggregates and clears the window. */
  flush(): { icmp: IcmpAggregate[]; http: HttpAggregate[] } {
    const out = { icmp: aggregateIcmp(this.icmp), http: aggregateHttp(this.http) };
    this.icmp = [];
    this.http = [];
    return out;
  }
}
