// lockhub: the three locks of locks.cjs, but node 4 sleeps (neither listening
// nor FLiRS) and is reachable only after it sends a Wake Up Notification
// (inject one with the control channel: {"cmd":"send","node":4,"hex":"8407"}).
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const n4 = cfg.nodes.find((n) => n.id === 4);
  n4.capabilities = { ...n4.capabilities, isListening: false, isFrequentListening: false };
  return cfg;
};
