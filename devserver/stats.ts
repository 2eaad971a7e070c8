/** JSON shape of `GET /_dev/stats`. */
export interface StatsSnapshot {
  /** Requests per route (API path, `/c/:code`, …) and HTTP status. */
  requests: Record<string, Record<string, number>>;
  /** Successful answers of the access-token endpoint. */
  at_success: number;
  /** Refresh-token grants the OP completed. */
  op_refresh_grants: number;
  /** Client-credentials grants the OP completed (the dev service client's token requests). */
  op_client_credentials_grants: number;
  /** Mytoken rotations. */
  rotations: number;
  /** Demo-resource requests by HTTP status. */
  resource: Record<string, number>;
  /** Armed faults that fired. */
  faults_fired: number;
}

/** Counters of one dev server. */
export class Stats {
  #requests = new Map<string, Map<number, number>>();
  #resource = new Map<number, number>();
  atSuccess = 0;
  opRefreshGrants = 0;
  opClientCredentialsGrants = 0;
  rotations = 0;
  faultsFired = 0;

  count(route: string, status: number): void {
    let byStatus = this.#requests.get(route);
    if (!byStatus) {
      byStatus = new Map();
      this.#requests.set(route, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }

  countResource(status: number): void {
    this.#resource.set(status, (this.#resource.get(status) ?? 0) + 1);
  }

  reset(): void {
    this.#requests.clear();
    this.#resource.clear();
    this.atSuccess = 0;
    this.opRefreshGrants = 0;
    this.opClientCredentialsGrants = 0;
    this.rotations = 0;
    this.faultsFired = 0;
  }

  snapshot(): StatsSnapshot {
    const requests: Record<string, Record<string, number>> = {};
    for (const [route, byStatus] of this.#requests) requests[route] = Object.fromEntries(byStatus);
    return {
      requests,
      at_success: this.atSuccess,
      op_refresh_grants: this.opRefreshGrants,
      op_client_credentials_grants: this.opClientCredentialsGrants,
      rotations: this.rotations,
      resource: Object.fromEntries(this.#resource),
      faults_fired: this.faultsFired,
    };
  }
}
