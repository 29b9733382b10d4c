/** The test-set runner over a simulated cluster: its own admin endpoint, sleeping on the simulated clock. */
import { AdminClient } from '../../client/admin.js';
import { SetRunner } from '../../cli/runner.js';
import type { SimCluster } from '../../runtime/sim.js';

export function simRunner(sim: SimCluster): SetRunner {
  const timers = sim.timers();
  return new SetRunner({
    topology: sim.topology,
    client: sim.client,
    admin: new AdminClient(sim.network.endpoint('runner'), 'runner', timers),
    sleep: (ms) => new Promise((r) => timers.setTimeout(r, ms)),
  });
}
