module.exports = { '/': 'index.html', '/health': 'ok' };
