#!/usr/bin/env node
// proxy.js: hoardfs's fault-injecting, counting HTTP reverse proxy for integration tests.
//
//   node proxy.js --port P --upstream http://127.0.0.1:Q [--port-file FILE] [--watch-pid PID]
//                 [--tls-cert FILE --tls-key FILE]
//
// Forwards every request to the upstream (keeping the Host header, so signatures stay valid)
// and streams bodies both ways without buffering them. `--port 0` picks a free port; with
// --port-file the port actually bound is written to FILE (atomically) once it listens. With
// --watch-pid it exits by itself within a second of process PID going away. With --tls-cert and
// --tls-key it serves HTTPS (PEM files; the upstream stays plain HTTP).
//
// Control API (never forwarded, never counted):
//   GET  /__proxy/stats   {requests, gets, heads, bytes_out, faults_applied,
//                          paths: {PATH: {requests, bytes_out}}, log: [{method, url, range,
//                          status, bytes_out, fault}]}   (PATH has no query; log keeps the
//                          last 10000 requests)
//   POST /__proxy/reset   clears the counters, the log and the fault rules
//   GET  /__proxy/faults  the rules still armed, with how often each has fired
//   POST /__proxy/faults  replaces the fault rules with a JSON list (or {"rules": [...]}) of
//     {match: "substring of path+query" (default: every request), method: "GET" (default: any),
//      times: N (default: unlimited; a rule is used up after N matching requests),
//      action: one of
//        "status"       answer `status` (e.g. 503) without forwarding; optional retry_after
//                       (sets Retry-After) and body
//        "close_after"  forward, send the headers and `bytes` body bytes, then destroy the socket
//        "delay"        wait `ms` milliseconds, then forward
//        "stall"        accept the request and never answer (the socket stays open)
//        "bad_range"    forward, but rewrite Content-Range: to `value` if given, else shift the
//                       range by one byte
//        "wrong_header" forward, but set response header `header` to `value`}
//     The first armed rule that matches a request applies to it.
'use strict';

const http = require('http');
const fs = require('fs');

const LOG_MAX = 10000;
const CONTROL = '/__proxy/';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
	'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
const ACTIONS = new Set(['status', 'close_after', 'delay', 'stall', 'bad_range', 'wrong_header']);

function usage(msg) {
	process.stderr.write(`proxy.js: ${msg}\n` +
		'usage: node proxy.js --port P --upstream http://HOST:PORT [--port-file FILE] ' +
		'[--watch-pid PID]\n');
	process.exit(2);
}

function parseArgs(argv) {
	const opts = { port: null, upstream: null, portFile: null, watchPid: 0, tlsCert: null,
		tlsKey: null };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const v = argv[i + 1];
		if (a === '--port' && v !== undefined) {
			opts.port = Number(v);
			i++;
		} else if (a === '--upstream' && v !== undefined) {
			opts.upstream = v;
			i++;
		} else if (a === '--port-file' && v !== undefined) {
			opts.portFile = v;
			i++;
		} else if (a === '--watch-pid' && v !== undefined) {
			opts.watchPid = Number(v);
			i++;
		} else if (a === '--tls-cert' && v !== undefined) {
			opts.tlsCert = v;
			i++;
		} else if (a === '--tls-key' && v !== undefined) {
			opts.tlsKey = v;
			i++;
		} else {
			usage(`unknown or incomplete argument '${a}'`);
		}
	}
	if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
		usage('--port must be 0..65535');
	if (!opts.upstream)
		usage('--upstream is required');
	if (!Number.isInteger(opts.watchPid) || opts.watchPid < 0)
		usage('--watch-pid must be a pid');
	if (!opts.tlsCert !== !opts.tlsKey)
		usage('--tls-cert and --tls-key go together');
	let u;
	try {
		u = new URL(opts.upstream);
	} catch (e) {
		usage(`bad --upstream: ${e.message}`);
	}
	if (u.protocol !== 'http:')
		usage('--upstream must be an http:// URL');
	opts.upHost = u.hostname;
	opts.upPort = Number(u.port || 80);
	return opts;
}

const opts = parseArgs(process.argv.slice(2));
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });

let stats;
let rules = [];
const stalled = new Set();

function resetStats() {
	stats = { requests: 0, gets: 0, heads: 0, bytes_out: 0, faults_applied: 0, paths: {}, log: [] };
}
resetStats();

function validateRules(list) {
	if (list && !Array.isArray(list) && Array.isArray(list.rules))
		list = list.rules;
	if (!Array.isArray(list))
		throw new Error('expected a JSON list of rules');
	return list.map((r, i) => {
		if (typeof r !== 'object' || r === null)
			throw new Error(`rule ${i}: not an object`);
		if (!ACTIONS.has(r.action))
			throw new Error(`rule ${i}: unknown action '${r.action}'`);
		if (r.match !== undefined && typeof r.match !== 'string')
			throw new Error(`rule ${i}: match must be a string`);
		if (r.action === 'status' && !Number.isInteger(r.status))
			throw new Error(`rule ${i}: status needs an integer status`);
		if (r.action === 'close_after' && !(Number.isInteger(r.bytes) && r.bytes >= 0))
			throw new Error(`rule ${i}: close_after needs bytes >= 0`);
		if (r.action === 'delay' && !(Number.isFinite(r.ms) && r.ms >= 0))
			throw new Error(`rule ${i}: delay needs ms >= 0`);
		if (r.action === 'wrong_header' && (typeof r.header !== 'string' ||
			typeof r.value !== 'string'))
			throw new Error(`rule ${i}: wrong_header needs header and value strings`);
		const times = r.times === undefined || r.times === null ? Infinity : Number(r.times);
		if (!(times > 0))
			throw new Error(`rule ${i}: times must be > 0`);
		return Object.assign({}, r, { times, fired: 0 });
	});
}

// Returns the first armed rule matching this request and uses it up once, or null.
function takeRule(req) {
	for (const r of rules) {
		if (r.fired >= r.times)
			continue;
		if (r.method && r.method.toUpperCase() !== req.method)
			continue;
		if (r.match && !req.url.includes(r.match))
			continue;
		r.fired++;
		stats.faults_applied++;
		return r;
	}
	return null;
}

function sendJson(res, status, obj) {
	const body = Buffer.from(JSON.stringify(obj, (k, v) => (v === Infinity ? null : v)) + '\n');
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
	res.end(body);
}

function readBody(req, max, cb) {
	const chunks = [];
	let n = 0;
	req.on('data', (c) => {
		n += c.length;
		if (n <= max)
			chunks.push(c);
	});
	req.on('end', () => cb(n > max ? null : Buffer.concat(chunks)));
}

function control(req, res) {
	const what = req.url.slice(CONTROL.length).split('?')[0];
	if (req.method === 'GET' && what === 'stats')
		return sendJson(res, 200, stats);
	if (req.method === 'GET' && what === 'faults')
		return sendJson(res, 200, rules);
	if (req.method === 'POST' && what === 'reset') {
		return readBody(req, 1 << 16, () => {
			resetStats();
			rules = [];
			for (const s of stalled)
				s.destroy();
			stalled.clear();
			sendJson(res, 200, { ok: true });
		});
	}
	if (req.method === 'POST' && what === 'faults') {
		return readBody(req, 1 << 20, (body) => {
			try {
				if (body === null)
					throw new Error('rules too large');
				rules = validateRules(JSON.parse(body.toString('utf8') || '[]'));
			} catch (e) {
				return sendJson(res, 400, { error: e.message });
			}
			sendJson(res, 200, { ok: true, rules: rules.length });
		});
	}
	sendJson(res, 404, { error: `no control endpoint ${req.method} ${what}` });
}

function filterHeaders(raw) {
	const out = [];
	for (let i = 0; i < raw.length; i += 2) {
		if (!HOP_BY_HOP.has(raw[i].toLowerCase()))
			out.push(raw[i], raw[i + 1]);
	}
	return out;
}

function setHeader(raw, name, value) {
	const lname = name.toLowerCase();
	const out = [];
	for (let i = 0; i < raw.length; i += 2) {
		if (raw[i].toLowerCase() !== lname)
			out.push(raw[i], raw[i + 1]);
	}
	out.push(name, value);
	return out;
}

function shiftRange(v) {
	const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v || '');
	if (!m)
		return 'bytes 1-1/1';
	return `bytes ${BigInt(m[1]) + 1n}-${BigInt(m[2]) + 1n}/${m[3]}`;
}

function account(req, entry, n) {
	stats.bytes_out += n;
	entry.bytes_out += n;
	const p = stats.paths[entry.path];
	if (p) // absent when the stats were reset while this response was streaming
		p.bytes_out += n;
}

function forward(req, res, rule, entry, retried) {
	const headers = filterHeaders(req.rawHeaders);
	const upReq = http.request({
		host: opts.upHost,
		port: opts.upPort,
		method: req.method,
		path: req.url,
		headers,
		agent,
	});
	let done = false;
	const abort = () => {
		if (done)
			return;
		done = true;
		upReq.destroy();
		res.destroy();
	};
	res.on('close', () => {
		if (!res.writableFinished)
			abort();
	});
	upReq.on('error', (e) => {
		if (done)
			return;
		// An idle kept-alive upstream connection may close just as it is reused: send a
		// bodiless request again once rather than fail it (it never reached the server).
		if (!retried && upReq.reusedSocket && !res.headersSent && e.code === 'ECONNRESET' &&
			(req.method === 'GET' || req.method === 'HEAD')) {
			done = true;
			return forward(req, res, rule, entry, true);
		}
		if (!res.headersSent) {
			entry.status = 502;
			done = true;
			const body = Buffer.from(`proxy: upstream error: ${e.message}\n`);
			res.writeHead(502, { 'Content-Length': body.length, 'Content-Type': 'text/plain' });
			res.end(body);
		} else {
			abort();
		}
	});
	upReq.on('response', (upRes) => {
		let raw = filterHeaders(upRes.rawHeaders);
		if (rule && rule.action === 'bad_range') {
			const cr = upRes.headers['content-range'];
			raw = setHeader(raw, 'Content-Range', rule.value !== undefined ? String(rule.value)
				: shiftRange(cr));
		} else if (rule && rule.action === 'wrong_header') {
			raw = setHeader(raw, rule.header, rule.value);
		}
		entry.status = upRes.statusCode;
		res.writeHead(upRes.statusCode, upRes.statusMessage, raw);
		upRes.on('error', abort);
		upRes.on('close', () => {
			if (!upRes.complete)
				abort(); // the upstream died mid-body: the client sees a cut too
		});
		if (rule && rule.action === 'close_after') {
			let left = rule.bytes;
			res.flushHeaders();
			const cut = () => {
				done = true;
				upRes.destroy();
				// Let the bytes already written reach the client, then drop the connection.
				setImmediate(() => res.destroy());
			};
			if (left === 0)
				return cut();
			upRes.on('data', (c) => {
				if (left <= 0)
					return;
				const part = c.length > left ? c.subarray(0, left) : c;
				left -= part.length;
				account(req, entry, part.length);
				if (left > 0) {
					if (!res.write(part))
						upRes.pause();
					return;
				}
				upRes.pause();
				res.write(part, cut);
			});
			res.on('drain', () => upRes.resume());
			upRes.on('end', () => {
				done = true;
				res.end();
			});
			return;
		}
		upRes.on('data', (c) => account(req, entry, c.length));
		upRes.on('end', () => {
			done = true;
		});
		upRes.pipe(res);
	});
	if (req.readableEnded)
		upReq.end(); // a resend: the (empty) request body was consumed by the first try
	else
		req.pipe(upReq);
}

const handler = (req, res) => {
	if (req.url.startsWith(CONTROL))
		return control(req, res);
	const path = req.url.split('?')[0];
	stats.requests++;
	if (req.method === 'GET')
		stats.gets++;
	else if (req.method === 'HEAD')
		stats.heads++;
	if (!Object.prototype.hasOwnProperty.call(stats.paths, path))
		stats.paths[path] = { requests: 0, bytes_out: 0 };
	stats.paths[path].requests++;
	const rule = takeRule(req);
	const entry = {
		method: req.method,
		url: req.url,
		path,
		range: req.headers.range || null,
		status: 0,
		bytes_out: 0,
		fault: rule ? rule.action : null,
	};
	stats.log.push(entry);
	if (stats.log.length > LOG_MAX)
		stats.log.shift();

	if (!rule)
		return forward(req, res, null, entry);
	switch (rule.action) {
	case 'status': {
		req.resume();
		const body = Buffer.from(rule.body !== undefined ? String(rule.body)
			: `proxy: injected ${rule.status}\n`);
		const h = { 'Content-Type': 'text/plain', 'Content-Length': body.length };
		if (rule.retry_after !== undefined)
			h['Retry-After'] = String(rule.retry_after);
		entry.status = rule.status;
		res.writeHead(rule.status, h);
		return res.end(req.method === 'HEAD' ? undefined : body);
	}
	case 'stall':
		req.resume();
		stalled.add(req.socket);
		req.socket.on('close', () => stalled.delete(req.socket));
		return;
	case 'delay': {
		req.pause();
		const t = setTimeout(() => forward(req, res, rule, entry), rule.ms);
		res.on('close', () => clearTimeout(t));
		return;
	}
	default:
		return forward(req, res, rule, entry);
	}
};
const server = opts.tlsCert
	? require('https').createServer({ cert: fs.readFileSync(opts.tlsCert),
		key: fs.readFileSync(opts.tlsKey) }, handler)
	: http.createServer(handler);

server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.requestTimeout = 0;
server.on('clientError', (err, socket) => socket.destroy());
server.on('error', (e) => {
	process.stderr.write(`proxy.js: ${e.message}\n`);
	process.exit(1);
});
server.listen(opts.port, '127.0.0.1', () => {
	const port = server.address().port;
	if (opts.portFile) {
		const tmp = `${opts.portFile}.${process.pid}.tmp`;
		fs.writeFileSync(tmp, `${port}\n`);
		fs.renameSync(tmp, opts.portFile);
	}
	process.stdout.write(`proxy.js listening on ${opts.tlsCert ? 'https' : 'http'}://127.0.0.1:` +
		`${port} -> ${opts.upstream}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'])
	process.on(sig, () => process.exit(0));

// With --watch-pid, exit once that process is gone (a test killed by a timeout leaks no proxy).
if (opts.watchPid) {
	setInterval(() => {
		try {
			process.kill(opts.watchPid, 0);
		} catch (e) {
			if (e.code === 'ESRCH')
				process.exit(0);
		}
	}, 1000).unref();
}
