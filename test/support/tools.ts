// Paths of the Prometheus binaries that `npm run tools` unpacks from Debian packages.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ToolsError, toolsLayout } from '../../scripts/fetch-tools.ts';

export { ToolsError } from '../../scripts/fetch-tools.ts';

export const promtoolPath = join(toolsLayout.bin, 'promtool');
export const prometheusPath = join(toolsLayout.bin, 'prometheus');
export const blackboxPath = join(toolsLayout.bin, 'blackbox_exporter');

const HINT = 'run `npm run tools` first';

/**
 * Returns the path of a tool, or throws `ERR_TOOLS_MISSING` naming the fix.
 *
 * @example
 * const promtool = requireTool(promtoolPath);
 */
export function requireTool(path: string): string {
  if (!existsSync(path)) {
    throw new ToolsError('ERR_TOOLS_MISSING', `${path} missing: ${HINT}`);
  }
  return path;
}

/** Throws `ERR_TOOLS_MISSING` unless all three tools are in place. */
export function requireTools(): void {
  for (const path of [promtoolPath, prometheusPath, blackboxPath]) requireTool(path);
}
