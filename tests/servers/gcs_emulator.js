#!/usr/bin/env node
// gcs_emulator.js: serves the Cloud Storage JSON API emulator from npm firebase-tools on
// 127.0.0.1 without Java (the stock `firebase emulators:start` needs Java 21 and a downloaded jar;
// the storage emulator's HTTP app itself is plain Node).
//
//   node gcs_emulator.js --port P [--port-file FILE]
//
// `--port 0` picks a free port; with --port-file the port actually bound is written to FILE
// (atomically) once it listens. The emulator keeps object blobs under $TMPDIR/firebase/: run it
// with TMPDIR set to a private directory (start.sh does). Without TMPDIR a private directory is
// created under the system's and removed at exit. Buckets are created on first use; upload with
// POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME (or uploadType=multipart to set
// metadata such as contentEncoding).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const PROJECT = 'demo-hoardfs';

function usage(msg) {
	process.stderr.write(`gcs_emulator.js: ${msg}\n` +
		'usage: node gcs_emulator.js --port P [--port-file FILE]\n');
	process.exit(2);
}

let port = null;
let portFile = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	if (argv[i] === '--port' && argv[i + 1] !== undefined)
		port = Number(argv[++i]);
	else if (argv[i] === '--port-file' && argv[i + 1] !== undefined)
		portFile = argv[++i];
	else
		usage(`unknown or incomplete argument '${argv[i]}'`);
}
if (!Number.isInteger(port) || port < 0 || port > 65535)
	usage('--port must be 0..65535');

// The emulator reads os.tmpdir() (i.e. $TMPDIR) when it is constructed.
let ownTmp = null;
if (!process.env.TMPDIR) {
	ownTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hoardfs-gcsemu-'));
	process.env.TMPDIR = ownTmp;
}

function cleanupAndExit(code) {
	if (ownTmp) {
		try {
			fs.rmSync(ownTmp, { recursive: true, force: true });
		} catch (e) {
			// best effort
		}
	}
	process.exit(code);
}
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'])
	process.on(sig, () => cleanupAndExit(0));

const { StorageEmulator } = require('firebase-tools/lib/emulator/storage');
const { createApp } = require('firebase-tools/lib/emulator/storage/server');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry');

(async () => {
	const emu = new StorageEmulator({
		projectId: PROJECT,
		port: port,
		host: '127.0.0.1',
		auto_download: false,
	});
	// The upload service builds resumable-upload URLs from the registry.
	EmulatorRegistry.set('storage', emu);
	const app = await createApp(PROJECT, emu);
	const server = app.listen(port, '127.0.0.1', () => {
		const bound = server.address().port;
		emu.args.port = bound; // what the registry hands out in upload URLs (for --port 0)
		if (portFile) {
			const tmp = `${portFile}.${process.pid}.tmp`;
			fs.writeFileSync(tmp, `${bound}\n`);
			fs.renameSync(tmp, portFile);
		}
		process.stdout.write(`gcs_emulator.js listening on 127.0.0.1:${bound}\n`);
	});
	server.on('error', (e) => {
		process.stderr.write(`gcs_emulator.js: ${e.message}\n`);
		cleanupAndExit(1);
	});
})().catch((e) => {
	process.stderr.write(`gcs_emulator.js: failed to start: ${e.stack || e}\n`);
	cleanupAndExit(1);
});
