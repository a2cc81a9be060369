#!/usr/bin/env node
// fake_gcp_auth.js: a fake Google OAuth2 token endpoint and GCE metadata server for hoardfs's
// integration tests (Node's own modules only).
//
//   node fake_gcp_auth.js --port P [--pubkey FILE] [--iss EMAIL] [--expires-in S]
//                         [--upstream URL] [--port-file FILE] [--watch-pid PID]
//
// `--port 0` picks a free port; --port-file gets the port actually bound (written atomically).
// --watch-pid makes it exit within a second of process PID going away.
//
// Token endpoint: POST /token (application/x-www-form-urlencoded)
//   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT
//       The JWT must be RS256 and verify with a registered public key; its claims must have
//       iss (equal to the registered email when one was given), aud equal to this server's
//       http://HOST/token, a scope list holding devstorage.read_only, and iat <= now + 60 < exp,
//       exp - iat <= 3600.
//   grant_type=refresh_token&client_id=..&client_secret=..&refresh_token=..
//       All three must match a registered user.
//   Success: 200 {"access_token", "expires_in", "token_type": "Bearer"}; failure: 400
//   {"error": "invalid_grant" | "unsupported_grant_type" | "invalid_request",
//    "error_description"}.
// Metadata server: every answer carries "Metadata-Flavor: Google".
//   GET /computeMetadata/v1/instance/service-accounts/default/token  needs request header
//       "Metadata-Flavor: Google" (else 403) and no X-Forwarded-For; answers like /token.
//   GET /  200 (what a metadata probe asks).
// GCS pass-through (for proving a bearer token was sent): requests whose path starts with
//   /storage/, /download/ or /upload/ are forwarded to the upstream (--upstream or config) after
//   their Authorization header is classified as: a valid token issued here, an expired or unknown
//   one, or none. With require_auth, requests without a valid token get 401 instead.
// Control (never counted):
//   POST /control/pubkey   body: a PEM public key; ?iss=EMAIL pins the assertion's issuer.
//                          Replaces the registered key. 400 if it is not a public key.
//   POST /control/user     JSON {client_id, client_secret, refresh_token}: adds a user.
//   POST /control/config   JSON, any of {expires_in, fail_next (answer 503 to that many token
//                          requests), require_auth, upstream}.
//   POST /control/reset    forgets keys, users, tokens, counters, and the config (back to the
//                          command line's).
//   GET  /control/stats    {grants: {service_account, authorized_user, metadata}, rejected,
//                          failed_injected, last_error, last_claims, last_kid,
//                          proxied: {total, valid_token, invalid_token, no_token, refused}}
'use strict';

const http = require('http');
const crypto = require('crypto');
const fs = require('fs');

const BODY_MAX = 1 << 20;
const SCOPE = 'https://www.googleapis.com/auth/devstorage.read_only';
const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const METADATA_TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';
const PROXIED = ['/storage/', '/download/', '/upload/'];

function usage(msg) {
	process.stderr.write(`fake_gcp_auth.js: ${msg}\n` +
		'usage: node fake_gcp_auth.js --port P [--pubkey FILE] [--iss EMAIL] ' +
		'[--expires-in S] [--upstream URL] [--port-file FILE] [--watch-pid PID]\n');
	process.exit(2);
}

function parseArgs(argv) {
	const o = { port: null, pubkey: null, iss: null, expiresIn: 3600, upstream: null,
		portFile: null, watchPid: 0 };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const v = argv[i + 1];
		if (v === undefined)
			usage(`${a} needs a value`);
		i++;
		if (a === '--port')
			o.port = Number(v);
		else if (a === '--pubkey')
			o.pubkey = v;
		else if (a === '--iss')
			o.iss = v;
		else if (a === '--expires-in')
			o.expiresIn = Number(v);
		else if (a === '--upstream')
			o.upstream = v;
		else if (a === '--port-file')
			o.portFile = v;
		else if (a === '--watch-pid')
			o.watchPid = Number(v);
		else
			usage(`unknown option ${a}`);
	}
	if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535)
		usage('--port must be 0..65535');
	if (!Number.isInteger(o.expiresIn) || o.expiresIn < 1)
		usage('--expires-in must be a positive integer');
	return o;
}

const opts = parseArgs(process.argv.slice(2));

let state;
function resetState() {
	state = {
		key: null, // crypto.KeyObject
		iss: opts.iss,
		users: [],
		tokens: new Map(), // access token -> {kind, expiresAt (ms)}
		config: { expires_in: opts.expiresIn, fail_next: 0, require_auth: false,
			upstream: opts.upstream },
		stats: {
			grants: { service_account: 0, authorized_user: 0, metadata: 0 },
			rejected: 0, failed_injected: 0, last_error: '', last_claims: null, last_kid: null,
			proxied: { total: 0, valid_token: 0, invalid_token: 0, no_token: 0, refused: 0 },
		},
	};
	if (opts.pubkey)
		state.key = crypto.createPublicKey(fs.readFileSync(opts.pubkey));
}
resetState();

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		let n = 0;
		req.on('data', (c) => {
			n += c.length;
			if (n > BODY_MAX) {
				reject(new Error('body too large'));
				req.destroy();
				return;
			}
			chunks.push(c);
		});
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

function send(res, status, obj, extra) {
	const body = Buffer.from(JSON.stringify(obj));
	res.writeHead(status, Object.assign({ 'Content-Type': 'application/json',
		'Content-Length': body.length }, extra || {}));
	res.end(body);
}

function b64urlDecode(s) {
	if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s))
		throw new Error('not base64url');
	return Buffer.from(s, 'base64url');
}

function issue(res, kind, extraHeaders) {
	const token = `fake-${kind}-${crypto.randomBytes(12).toString('hex')}`;
	const expiresIn = state.config.expires_in;
	state.tokens.set(token, { kind, expiresAt: Date.now() + expiresIn * 1000 });
	state.stats.grants[kind]++;
	send(res, 200, { access_token: token, expires_in: expiresIn, token_type: 'Bearer' },
		extraHeaders);
}

function reject(res, error, description, extraHeaders) {
	state.stats.rejected++;
	state.stats.last_error = `${error}: ${description}`;
	send(res, 400, { error, error_description: description }, extraHeaders);
}

// Throws with a description when the assertion is not acceptable; returns the claims.
function verifyAssertion(jwt, host) {
	if (!state.key)
		throw new Error('no public key registered');
	const parts = String(jwt).split('.');
	if (parts.length !== 3)
		throw new Error('assertion is not a compact JWT');
	const header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
	const claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
	const sig = b64urlDecode(parts[2]);
	if (header.alg !== 'RS256')
		throw new Error(`alg ${header.alg} is not RS256`);
	if (header.typ !== undefined && header.typ !== 'JWT')
		throw new Error(`typ ${header.typ} is not JWT`);
	const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), state.key, sig);
	if (!ok)
		throw new Error('Invalid JWT Signature.');
	if (typeof claims.iss !== 'string' || !claims.iss)
		throw new Error('iss missing');
	if (state.iss && claims.iss !== state.iss)
		throw new Error(`iss ${claims.iss} is not ${state.iss}`);
	const aud = `http://${host}/token`;
	if (claims.aud !== aud)
		throw new Error(`aud ${claims.aud} is not ${aud}`);
	if (typeof claims.scope !== 'string' || !claims.scope.split(' ').includes(SCOPE))
		throw new Error(`scope ${claims.scope} lacks ${SCOPE}`);
	const now = Math.floor(Date.now() / 1000);
	if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp))
		throw new Error('iat/exp are not integers');
	if (claims.iat > now + 60)
		throw new Error('iat is in the future');
	if (claims.exp <= now)
		throw new Error('assertion expired');
	if (claims.exp <= claims.iat || claims.exp - claims.iat > 3600)
		throw new Error('exp - iat must be in (0, 3600]');
	state.stats.last_claims = claims;
	state.stats.last_kid = header.kid === undefined ? null : header.kid;
	return claims;
}

async function handleToken(req, res) {
	if (req.method !== 'POST')
		return send(res, 405, { error: 'method not allowed' });
	const body = (await readBody(req)).toString('utf8');
	if (state.config.fail_next > 0) {
		state.config.fail_next--;
		state.stats.failed_injected++;
		return send(res, 503, { error: 'backendError' });
	}
	const ct = String(req.headers['content-type'] || '');
	if (!ct.startsWith('application/x-www-form-urlencoded'))
		return reject(res, 'invalid_request', `content type ${ct}`);
	const form = new URLSearchParams(body);
	const grant = form.get('grant_type');
	if (grant === JWT_GRANT) {
		try {
			verifyAssertion(form.get('assertion'), req.headers.host);
		} catch (e) {
			return reject(res, 'invalid_grant', e.message);
		}
		return issue(res, 'service_account');
	}
	if (grant === 'refresh_token') {
		const id = form.get('client_id');
		const secret = form.get('client_secret');
		const refresh = form.get('refresh_token');
		const user = state.users.find((u) => u.client_id === id &&
			u.client_secret === secret && u.refresh_token === refresh);
		if (!user)
			return reject(res, 'invalid_grant', 'unknown client or refresh token');
		return issue(res, 'authorized_user');
	}
	return reject(res, 'unsupported_grant_type', `grant_type ${grant}`);
}

function handleMetadata(req, res) {
	const flavor = { 'Metadata-Flavor': 'Google' };
	if (req.headers['metadata-flavor'] !== 'Google' || req.headers['x-forwarded-for'] !== undefined) {
		state.stats.rejected++;
		state.stats.last_error = 'metadata request without Metadata-Flavor: Google';
		return send(res, 403, { error: 'Missing Metadata-Flavor:Google header.' }, flavor);
	}
	if (state.config.fail_next > 0) {
		state.config.fail_next--;
		state.stats.failed_injected++;
		return send(res, 503, { error: 'unavailable' }, flavor);
	}
	return issue(res, 'metadata', flavor);
}

function proxy(req, res) {
	const p = state.stats.proxied;
	p.total++;
	const auth = req.headers.authorization;
	let valid = false;
	if (auth === undefined) {
		p.no_token++;
	} else {
		const m = /^Bearer (\S+)$/.exec(auth);
		const t = m && state.tokens.get(m[1]);
		valid = !!t && t.expiresAt > Date.now();
		if (valid)
			p.valid_token++;
		else
			p.invalid_token++;
	}
	if (state.config.require_auth && !valid) {
		p.refused++;
		return send(res, 401, { error: { code: 401, message: 'no valid bearer token' } });
	}
	if (!state.config.upstream)
		return send(res, 502, { error: 'no upstream configured' });
	const up = new URL(state.config.upstream);
	const headers = Object.assign({}, req.headers);
	delete headers.host;
	delete headers.authorization;
	const preq = http.request({ host: up.hostname, port: up.port, method: req.method,
		path: req.url, headers }, (pres) => {
		res.writeHead(pres.statusCode, pres.headers);
		pres.pipe(res);
	});
	preq.on('error', (e) => {
		if (!res.headersSent)
			send(res, 502, { error: `upstream: ${e.message}` });
		else
			res.destroy();
	});
	req.pipe(preq);
}

async function handleControl(req, res, url) {
	const what = url.pathname.slice('/control/'.length);
	if (req.method === 'GET' && what === 'stats')
		return send(res, 200, state.stats);
	if (req.method !== 'POST')
		return send(res, 405, { error: 'method not allowed' });
	const body = await readBody(req);
	if (what === 'reset') {
		resetState();
		return send(res, 200, { ok: true });
	}
	if (what === 'pubkey') {
		try {
			state.key = crypto.createPublicKey(body);
		} catch (e) {
			return send(res, 400, { error: `not a public key: ${e.message}` });
		}
		if (state.key.type !== 'public')
			return send(res, 400, { error: 'not a public key' });
		if (url.searchParams.has('iss'))
			state.iss = url.searchParams.get('iss');
		return send(res, 200, { ok: true });
	}
	let j;
	try {
		j = JSON.parse(body.toString('utf8'));
	} catch (e) {
		return send(res, 400, { error: 'body is not JSON' });
	}
	if (what === 'user') {
		for (const f of ['client_id', 'client_secret', 'refresh_token']) {
			if (typeof j[f] !== 'string' || !j[f])
				return send(res, 400, { error: `${f} missing` });
		}
		state.users.push({ client_id: j.client_id, client_secret: j.client_secret,
			refresh_token: j.refresh_token });
		return send(res, 200, { ok: true });
	}
	if (what === 'config') {
		for (const k of Object.keys(j)) {
			if (!(k in state.config))
				return send(res, 400, { error: `unknown setting ${k}` });
		}
		if (j.expires_in !== undefined && !(Number.isInteger(j.expires_in) && j.expires_in > 0))
			return send(res, 400, { error: 'expires_in must be a positive integer' });
		if (j.fail_next !== undefined && !(Number.isInteger(j.fail_next) && j.fail_next >= 0))
			return send(res, 400, { error: 'fail_next must be a non-negative integer' });
		Object.assign(state.config, j);
		return send(res, 200, state.config);
	}
	return send(res, 404, { error: `no control ${what}` });
}

const server = http.createServer((req, res) => {
	const url = new URL(req.url, 'http://localhost');
	let p;
	if (url.pathname.startsWith('/control/'))
		p = handleControl(req, res, url);
	else if (url.pathname === '/token')
		p = handleToken(req, res);
	else if (url.pathname === METADATA_TOKEN_PATH)
		p = Promise.resolve(handleMetadata(req, res));
	else if (PROXIED.some((x) => url.pathname.startsWith(x)))
		p = Promise.resolve(proxy(req, res));
	else if (req.method === 'GET' && url.pathname === '/')
		p = Promise.resolve(send(res, 200, { fake_gcp_auth: true }, { 'Metadata-Flavor': 'Google' }));
	else
		p = Promise.resolve(send(res, 404, { error: 'not found' }, { 'Metadata-Flavor': 'Google' }));
	p.catch((e) => {
		if (!res.headersSent)
			send(res, 400, { error: String(e.message || e) });
		else
			res.destroy();
	});
});

server.listen(opts.port, '127.0.0.1', () => {
	const port = server.address().port;
	if (opts.portFile) {
		fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
		fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
	}
	process.stdout.write(`fake_gcp_auth listening on 127.0.0.1:${port}\n`);
});

if (opts.watchPid > 0) {
	setInterval(() => {
		try {
			process.kill(opts.watchPid, 0);
		} catch (e) {
			process.exit(0);
		}
	}, 500).unref();
}

for (const sig of ['SIGTERM', 'SIGINT'])
	process.on(sig, () => process.exit(0));
