'use strict';
module.exports = require('./build/Release/weir_ringbuf.node');
