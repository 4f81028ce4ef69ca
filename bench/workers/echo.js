// Benchmark worker: a plain compute-cluster worker script that sends each
// message straight back (measures the pool's round trip, not the work).
process.on('message', (m) => {
  process.send(m);
});
