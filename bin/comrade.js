#!/usr/bin/env node
'use strict';
// comrade's command line: `comrade worker` runs a worker host of a queue on Redis
// (lib/remote/host.js). Credentials never appear in what it prints.

const fs = require('node:fs');
const path = require('node:path');

const MAIN_HELP = `Usage: comrade <command> [options]

Commands:
  worker    run a worker host: take jobs from a queue on Redis and run them on local workers

Options:
  -h, --help      this help (comrade worker --help: the worker's options)
  -v, --version   the package's version
`;

const WORKER_HELP = `Usage: comrade worker --redis URL --queue NAME (--module FILE | --command EXE [-- ARGS...]) [options]

Takes jobs from the queue NAME on Redis, exactly as many as it has free slots (workers x
concurrency), runs them on local worker processes and writes each result back to the producer
that queued it (new Pool({ redis: URL, queue: NAME }) in Node).

Required:
  --redis URL          redis://[user:password@]host:port[/db], or rediss:// for TLS; or set
                       COMRADE_REDIS_URL (keeps the password out of the process list)
  --queue NAME         the queue's name (1 to 200 bytes, no braces)
  --module FILE        a Node module exporting the functions (as for new Pool({ module }))
  --command EXE        a native worker speaking docs/PROTOCOL.md; its arguments follow --

Options:
  --workers N          local worker processes (default: ceil(cpus x 1.25))
  --concurrency C      jobs in flight per worker (default: 1)
  --lease MS           a job held by a silent host goes to another host after MS ms (default:
                       30000); running jobs are renewed every MS/4. Use one value on every host
  --poll MS            longest wait for work before looking again (default: 1000); queued jobs
                       wake a waiting host at once
  --max-message BYTES  longest arguments or result of a job (default: 64 MiB)
  --tls-ca FILE        rediss://: the CA certificate (PEM) that signed the server's (default: the
                       system's trusted roots)
  --tls-cert FILE      rediss://: a client certificate (PEM), for a server that asks for one
  --tls-key FILE       rediss://: the client certificate's key (PEM)
  --init-data JSON     the workers' init() argument (default: null)
  --name NAME          this host's name in the queue and in errors (default: hostname:pid:random)
  --quiet              print nothing but errors
  -h, --help           this help

Signals: SIGTERM or SIGINT stops taking jobs, finishes those it holds, and exits 0.
When Redis is unreachable it keeps running its jobs and reconnects with backoff.
`;

function fail(message) {
  process.stderr.write(`comrade: ${message}\n`);
  process.exit(2);
}

function int(flag, v) {
  if (v === undefined || !/^\d+$/.test(v)) fail(`${flag} needs a whole number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return Number(v);
}

function parseWorker(argv) {
  const o = {};
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '-h': case '--help': process.stdout.write(WORKER_HELP); process.exit(0); break;
      case '--redis': o.redis = value(); break;
      case '--queue': o.queue = value(); break;
      case '--module': o.module = path.resolve(value() ?? fail('--module needs a file')); break;
      case '--command': o.command = [value() ?? fail('--command needs an executable')]; break;
      case '--workers': o.workers = int(flag, value()); break;
      case '--concurrency': o.concurrency = int(flag, value()); break;
      case '--lease': o.lease = int(flag, value()); break;
      case '--poll': o.poll = int(flag, value()); break;
      case '--max-message': o.maxMessage = int(flag, value()); break;
      case '--name': o.name = value(); break;
      case '--tls-ca': case '--tls-cert': case '--tls-key': {
        const file = value() ?? fail(`${flag} needs a file`);
        let pem;
        try {
          pem = fs.readFileSync(file, 'utf8');
        } catch (e) {
          fail(`${flag}: cannot read ${file} (${e.code || e.message})`);
        }
        o.tls = { ...o.tls, [flag.slice(6)]: pem };
        break;
      }
      case '--quiet': quiet = true; break;
      case '--init-data': {
        const text = value();
        try {
          o.initData = JSON.parse(text);
        } catch {
          fail(`--init-data must be JSON, got ${JSON.stringify(text)}`);
        }
        break;
      }
      case '--':
        if (o.command === undefined) fail('arguments after -- are for --command');
        o.command.push(...argv.slice(i + 1));
        i = argv.length;
        break;
      default: fail(`unknown option ${JSON.stringify(a)} (comrade worker --help lists them)`);
    }
  }
  if (o.redis === undefined) o.redis = process.env.COMRADE_REDIS_URL;
  if (o.redis === undefined) fail('--redis URL (or COMRADE_REDIS_URL) is required');
  if (o.queue === undefined) fail('--queue NAME is required');
  if ((o.module === undefined) === (o.command === undefined)) fail('give exactly one of --module or --command');
  return { o, quiet };
}

async function worker(argv) {
  const { o, quiet } = parseWorker(argv);
  const { startWorkerHost } = require('../lib/remote/host');
  const { redactUrl } = require('../lib/remote/common');
  const say = (line) => { if (!quiet) process.stderr.write(`comrade worker: ${line}\n`); };
  let host;
  try {
    host = await startWorkerHost(o);
  } catch (e) {
    process.stderr.write(`comrade worker: ${e.message}\n`);
    process.exit(1);
  }
  host.on('redisError', (e) => process.stderr.write(`comrade worker: ${e.message}\n`));
  host.on('reconnected', () => say('Redis is reachable again'));
  host.on('lost', ({ job }) => say(`job ${job} was taken by another host (this one was silent past its lease); its result will be dropped`));
  host.on('cancel', ({ job }) => say(`job ${job} was cancelled by its producer: aborting it`));
  host.on('result', ({ job, accepted }) => {
    if (!accepted) say(`the result of job ${job} was dropped: this host no longer owned it`);
  });
  say(`host ${host.name} takes jobs of queue ${o.queue} from ${redactUrl(o.redis)} (${host.slots} slots)`);
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: finishing ${host.running} job(s), taking no more`);
    host.close().then(() => {
      const s = host.stats();
      say(`stopped: completed ${s.completed} job(s); ${s.dropped} result(s) dropped, ` +
        `${s.failed} job(s) failed past their retries, ${s.dead} entries dead-lettered`);
      process.exit(0);
    }, (e) => {
      process.stderr.write(`comrade worker: ${e.message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help') {
    process.stdout.write(MAIN_HELP);
    process.exit(cmd === undefined ? 2 : 0);
  }
  if (cmd === '-v' || cmd === '--version') {
    process.stdout.write(`${require('../package.json').version}\n`);
    return;
  }
  if (cmd === 'worker') {
    worker(rest);
    return;
  }
  fail(`unknown command ${JSON.stringify(cmd)} (comrade --help lists them)`);
}

main(process.argv.slice(2));
