// Minimal OCPP 1.6J central system on ocpp-rpc: the reference peer of the gateway benchmark.
// Accepts any identity that offers subprotocol ocpp1.6, validates every payload against the
// OCPP 1.6 JSON schemas (strictMode), answers BootNotification (Accepted, interval 10),
// Heartbeat, MeterValues and StatusNotification, and stores nothing.
//
// Usage: node server.js [PORT] [HOST]   (PORT 0 = any free port; HOST defaults to 127.0.0.1)
// Prints "listening on PORT" on stdout once it accepts connections.
'use strict';

const { RPCServer } = require('ocpp-rpc');

const PROTOCOL = 'ocpp1.6';
const HEARTBEAT_INTERVAL_S = 10;

async function main() {
    const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? '0', 10);
    const host = process.argv[3] ?? '127.0.0.1';
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new Error(`bad port ${process.argv[2]}`);
    }

    const server = new RPCServer({
        protocols: [PROTOCOL],
        strictMode: true,
    });

    // Without a common subprotocol ocpp-rpc would still upgrade (with none): refuse instead.
    server.auth((accept, reject, handshake) => {
        if (!handshake.protocols.has(PROTOCOL)) {
            reject(400, `subprotocol ${PROTOCOL} required`);
            return;
        }
        accept({}, PROTOCOL);
    });

    server.on('client', (client) => {
        const now = () => new Date().toISOString();
        client.handle('BootNotification', () => ({
            status: 'Accepted',
            interval: HEARTBEAT_INTERVAL_S,
            currentTime: now(),
        }));
        client.handle('Heartbeat', () => ({ currentTime: now() }));
        client.handle('MeterValues', () => ({}));
        client.handle('StatusNotification', () => ({}));
    });

    const httpServer = await server.listen(port, host);
    process.stdout.write(`listening on ${httpServer.address().port}\n`);

    const shutdown = async () => {
        await server.close({ force: true });
        process.exit(0);
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
}

main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
});
