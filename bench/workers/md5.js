// Benchmark worker for the luafan workload: reply with the payload and its
// md5 so the parent can check that each reply belongs to the job it sent.
const crypto = require('node:crypto');

process.on('message', (payload) => {
  process.send([payload, crypto.createHash('md5').update(payload).digest('hex')]);
});
