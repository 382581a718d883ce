/**
 * The app-wide ceiling of bundles in flight toward the target, shared by every run and worker of
 * every instance. `acquire` waits for a slot and answers the function that gives it back.
 */
export interface BundleBudget {
  acquire(): Promise<() => void>;
}
