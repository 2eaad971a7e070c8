/**
 * The job summary: what was issued and where the rotated mytoken went. It takes only the facts it shows, so no
 * token can reach it by accident.
 */

export interface SummaryFacts {
  server: string;
  oidcIssuer: string | undefined;
  scope: string | undefined;
  audience: readonly string[] | undefined;
  accessTokenExpiresAt: Date | undefined;
  /** `null` when the mytoken never expires, undefined when it cannot tell (an opaque token). */
  mytokenExpiresAt: Date | null | undefined;
  rotated: boolean;
  /** Description of the secret written to, when the mytoken was written back. */
  writtenBackTo: string | undefined;
  subTokenExpiresAt: Date | undefined;
}

export function renderSummary(f: SummaryFacts): string {
  const rows: [string, string][] = [
    ['mytoken server', f.server],
    ['OpenID issuer', f.oidcIssuer ?? 'unknown'],
    ['Scope', f.scope ?? 'not reported'],
    ['Audience', f.audience === undefined ? 'not reported' : f.audience.join(' ')],
    ['Access token expires', time(f.accessTokenExpiresAt, 'not reported')],
    [
      'mytoken expires',
      f.mytokenExpiresAt === null ? 'never' : time(f.mytokenExpiresAt, 'unknown'),
    ],
    ['Rotated', f.rotated ? 'yes' : 'no'],
    ['Written back', f.writtenBackTo ?? (f.rotated ? 'no' : 'not needed')],
  ];
  if (f.subTokenExpiresAt !== undefined) {
    rows.push(['Sub-token for this job expires', time(f.subTokenExpiresAt, '')]);
  }
  const body = rows.map(([k, v]) => `| ${k} | ${cell(v)} |`).join('\n');
  return `### mytoken: access token issued\n\n| | |\n| --- | --- |\n${body}\n`;
}

function time(value: Date | undefined, fallback: string): string {
  return value === undefined ? fallback : value.toISOString();
}

/** Keeps a value inside its table cell and out of Markdown syntax. */
function cell(value: string): string {
  return value.replace(/[\r\n]+/g, ' ').replace(/([|`*_[\]<>\\])/g, '\\$1');
}
