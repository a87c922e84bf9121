'use strict';
// The Node example's app: a small HTTP server using two real npm packages
// that `npm ci` installs in the dependency stage.
const http = require('http');
const fs = require('fs');
const path = require('path');
const isNumber = require('is-number');
const ms = require('ms');
const { greeting } = require('./greeting');

const port = Number(process.env.PORT || 8080);
const started = Date.now();
const page = fs.readFileSync(path.join(__dirname, '..', 'public', 'index.html'));

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/uptime') {
    res.end(ms(Date.now() - started, { long: true }) + '\n');
  } else if (url.pathname === '/is-number') {
    res.end(String(isNumber(url.searchParams.get('v'))) + '\n');
  } else if (url.pathname === '/hello') {
    res.end(greeting() + '\n');
  } else {
    res.setHeader('content-type', 'text/html');
    res.end(page);
  }
});

if (require.main === module) {
  server.listen(port, () => console.log(`node example listening on ${port}`));
}
module.exports = server;
