/**
 * The slice of the runner protocol the Action uses. `main.ts` adapts `@actions/core` to it once; everything below
 * the entry point takes it as a parameter, so no domain module imports the toolkit.
 */
export interface ActionCore {
  /** The raw input value as the runner passed it (`INPUT_<NAME>`), untrimmed; '' when unset. */
  getInput(name: string): string;
  /** Registers a value with the runner's log masker. Call before the value can appear anywhere. */
  setSecret(value: string): void;
  setOutput(name: string, value: string): void;
  exportVariable(name: string, value: string): void;
  addPath(path: string): void;
  saveState(name: string, value: string): void;
  getState(name: string): string;
  debug(message: string): void;
  info(message: string): void;
  /** A notice annotation: something the user may want to fix, though the run goes on. */
  notice(message: string): void;
  warning(message: string): void;
  /** Reports the one-line failure and makes the step fail. */
  setFailed(message: string): void;
  /** Appends Markdown to the job summary; a no-op when the runner offers no summary file. */
  appendSummary(markdown: string): Promise<void>;
}

/** Environment variables the Action reads; a plain record so tests can pass their own. */
export type ActionEnv = Readonly<Record<string, string | undefined>>;
