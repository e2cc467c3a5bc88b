// One HTTP GET through node's http.get with a 1 s timeout, reported as one line, so a test can
// tell apart a client that got its answer, one whose own timeout fired and one whose response
// was cut short. The timeout is given twice on purpose: request.setTimeout(1000) arms the
// socket's idle timer only once the socket has connected, so a connect that never completes
// would not time out; the `timeout` option arms it before the connect too.
//
//   node client.js URL [--repeat N]
//
// Single request: client=node outcome=ok|timeout|error kind=K status=S bytes=B elapsed=E
//   kind: none, timeout, incomplete (the response ended before its Content-Length), or the
//   error's code.
// --repeat N: one warm-up request, then N more on one kept-alive socket, each timed:
//   client=node outcome=ok requests=N median=S min=S max=S
// Exit status 0 whenever the line was printed.
'use strict';
const http = require('http');

const TIMEOUT_MS = 1000;
const args = process.argv.slice(2);
if (!(args.length === 1 || (args.length === 3 && args[1] === '--repeat'))) {
  process.stderr.write('usage: node client.js URL [--repeat N]\n');
  process.exit(2);
}
const url = args[0];
const repeat = args.length === 3 ? Number(args[2]) : 0;
const agent = new http.Agent({keepAlive: true, maxSockets: 1});

// Resolves to {failure, kind, status, bytes}; failure is null on success. Settles once.
function get() {
  return new Promise((resolve) => {
    let settled = false;
    let bytes = 0;
    let status = 0;
    const done = (failure, kind) => {
      if (settled) return;
      settled = true;
      resolve({failure, kind, status, bytes});
    };
    const req = http.get(url, {agent, timeout: TIMEOUT_MS}, (res) => {
      status = res.statusCode;
      res.on('data', (chunk) => { bytes += chunk.length; });
      res.on('end', () => done(null, 'none'));
      res.on('error', () => {});
      res.on('close', () => { if (!res.complete) done('error', 'incomplete'); });
    });
    req.setTimeout(TIMEOUT_MS, () => {
      done('timeout', 'timeout');
      req.destroy();
    });
    req.on('error', (e) => done('error', e.code || e.name));
  });
}

function line(r, elapsed) {
  return `client=node outcome=${r.failure || 'ok'} kind=${r.kind} status=${r.status} ` +
         `bytes=${r.bytes} elapsed=${elapsed.toFixed(3)}`;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

(async () => {
  const start = now();
  const first = await get();
  if (first.failure || repeat <= 0) {
    console.log(line(first, now() - start));
  } else {
    const times = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = now();
      const r = await get();
      const t = now() - t0;
      if (r.failure) {
        console.log(line(r, t));
        break;
      }
      times.push(t);
    }
    if (times.length === repeat) {
      times.sort((a, b) => a - b);
      const n = times.length;
      const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
      console.log(`client=node outcome=ok requests=${n} median=${median.toFixed(4)} ` +
                  `min=${times[0].toFixed(4)} max=${times[n - 1].toFixed(4)}`);
    }
  }
  agent.destroy();
})();
