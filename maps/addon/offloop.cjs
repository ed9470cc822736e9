'use strict';
module.exports = require('./build/Release/weir_offloop.node');
