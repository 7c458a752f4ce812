/** The proxy bench's upstream: answers every request at once with a small JSON body, after reading what was sent. */
import { createServer } from 'node:http';

const body = Buffer.from('{"access_token":"bench","status":"COMPLETED","result":{"is_plant":{"probability":0.99,"binary":true}}}');
const server = createServer((req, res) => {
  req.resume(); // read (and drop) the request body, as a real upstream reads the images
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
