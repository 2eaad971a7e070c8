/**
 * Fault rules for the GitHub fake: which requests misbehave, how, and how many times. Rules are
 * consumed first-come: a request takes the oldest rule that matches its method and path and still
 * has uses left.
 */

/** What a matched request suffers instead of (or before) normal handling. */
export type GitHubFault =
  /**
   * An error status with a GitHub-style JSON body (500, 502, 503, or anything else, 404 included).
   */
  | { kind: 'status'; status: number; message?: string }
  /** 403 `Resource not accessible by integration`, whatever the token may do. */
  | { kind: 'forbidden' }
  /** Secondary rate limit: 403 (default) or 429 with `retry-after` (seconds, default 1). */
  | { kind: 'secondary-rate-limit'; status?: 403 | 429; retryAfter?: number }
  /**
   * Primary rate limit: 403 (default) or 429 with `x-ratelimit-remaining: 0` and
   * `x-ratelimit-reset` (UTC epoch seconds, default one second after now).
   */
  | { kind: 'primary-rate-limit'; status?: 403 | 429; resetAt?: number }
  /**
   * Waits `ms`, then handles the request normally. A client that gives up meanwhile does not stop a
   * write: the PUT still lands, as it may on GitHub.
   */
  | { kind: 'delay'; ms: number }
  /**
   * Resets the connection (TCP RST) without a response. With `afterHandling` the request is handled
   * first, so a PUT is stored although the client never learns it.
   */
  | { kind: 'reset'; afterHandling?: boolean };

export type GitHubFaultKind = GitHubFault['kind'];

/** One queued fault. */
export interface GitHubFaultRule {
  /** HTTP method to match, case-insensitive; any method when left out. */
  method?: string;
  /**
   * Path to match, without query and without the fake's `pathPrefix`. In a string, `*` stands for
   * one path segment or part of one (`/orgs/acme/actions/secrets/MY_*`); a RegExp is tested as
   * given.
   */
  path: string | RegExp;
  fault: GitHubFault;
  /** How many matching requests suffer the fault; default 1. */
  times?: number;
}

interface QueuedRule {
  method: string | undefined;
  path: RegExp;
  fault: GitHubFault;
  remaining: number;
}

export class FaultQueue {
  #rules: QueuedRule[] = [];

  add(rule: GitHubFaultRule): void {
    this.#rules.push({
      method: rule.method?.toUpperCase(),
      path: typeof rule.path === 'string' ? globToRegExp(rule.path) : rule.path,
      fault: rule.fault,
      remaining: rule.times ?? 1,
    });
  }

  /** Takes one use of the oldest matching rule, dropping rules that are used up. */
  take(method: string, path: string): GitHubFault | undefined {
    const rule = this.#rules.find(
      (r) => (r.method === undefined || r.method === method) && r.path.test(path),
    );
    if (rule === undefined) return undefined;
    rule.remaining -= 1;
    this.#rules = this.#rules.filter((r) => r.remaining > 0);
    return rule.fault;
  }

  /** Uses left across all rules. */
  pending(): number {
    return this.#rules.reduce((sum, r) => sum + r.remaining, 0);
  }

  clear(): void {
    this.#rules = [];
  }
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('[^/]*')}$`);
}
