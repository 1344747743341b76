// lockhub: the three locks of locks.cjs, but node 2 has no clock lockhub can set (no Time Parameters CC): its
// Schedule Entry Lock windows would run on a clock nobody set, so lockhub keeps its windows itself.
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const n2 = cfg.nodes.find((n) => n.id === 2);
  const TIME_PARAMETERS = 0x8b;
  n2.capabilities = { ...n2.capabilities,
    commandClasses: n2.capabilities.commandClasses.filter((c) => (typeof c === "number" ? c : c.ccId) !== TIME_PARAMETERS) };
  return cfg;
};
