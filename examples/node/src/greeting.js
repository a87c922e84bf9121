'use strict';
module.exports.greeting = () => 'hello from the node example';
