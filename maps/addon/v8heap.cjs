'use strict';
module.exports = require('./build/Release/weir_v8heap.node');
