// Compiled (not run) by `tsc -p __test__/tsconfig.json`: the public types must accept real
// usage and reject misuse.
import { ComputeCluster, ComputeClusterOptions } from '../index';
import CC = require('../compute-cluster');

const opts: ComputeClusterOptions = { module: './worker.js', max_processes: 2, max_backlog: -1 };
const cc = new ComputeCluster(opts);
const cc2 = ComputeCluster({ module: './worker.js' });
const cc3 = new CC({ module: './worker.js', max_request_time: 1.5 });

cc.enqueue({ n: 1 }, (err, result?: number) => {
  if (err !== null) {
    const text: string = err;
    void text;
  }
  void result;
})
  .enqueue('chained');
cc.on('info', (m) => m.toUpperCase()).on('debug', (m: string) => m);
cc.exit((err) => {
  const nothing: null = err;
  void nothing;
});
cc2.exit();
cc3.exit();

// @ts-expect-error module is required
new ComputeCluster({ max_processes: 2 });
// @ts-expect-error max_processes is a number
new ComputeCluster({ module: 'x', max_processes: 'two' });
