import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimCluster } from '../runtime/sim.js';

test('smoke: one transfer in a simulated 3x3 cluster', async () => {
  const sim = await SimCluster.start({ seed: 7 });
  await sim.startSet();
  const r = await sim.transfer(1001, 1002, 1);
  console.log(r);
  await sim.runFor(200);
  console.log(sim.balances(1001, [1, 2, 3]), sim.balances(1002, [1, 2, 3]));
  const rd = await sim.read(1002);
  console.log(rd);
  await sim.stop();
  assert.is(r.status, 'committed');
});
test.run();
