/** The proxy bench's upstream: answers every request at once with a small JSON body, after reading what was sent. */
import { createServer } from 'node:http';
import { announce } from './lib.js';

const body = Buffer.from(
  '{"access_token":"bench","status":"COMPLETED","result":{"is_plant":{"probability":0.99,"binary":true}}}',
);
const server = createServer((req, res) => {
  req.resume(); // read (and drop) the request body, as a real upstream reads the images
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
announce(server);
