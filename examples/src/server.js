const pad = require('left-pad');
const ms = require('ms');
console.log(pad('shop web listening on 8080', 30), ms(1000));
