// lockhub: lossy.cjs (node 2 drops every third User Code Get, logged as
// "MOCK_GET node=2 user=<id> n=<count>" / "MOCK_GET_DROPPED ..."), but node 2
// has 60 user codes (a long walk), and every User Code Set it receives is
// logged as "MOCK_UC_SET node=2 user=<id>", in the same stream as the Gets:
// a test reads from the order of the lines which slots were read before a
// write.
const base = require("./lossy.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const { UserCodeCCSet, UserCodeCCExtendedUserCodeSet } = ctx.require("@zwave-js/cc/UserCodeCC");
  const sets = {
    handleCC(_controller, self, cc) {
      if (cc instanceof UserCodeCCSet || cc instanceof UserCodeCCExtendedUserCodeSet) {
        console.log(`MOCK_UC_SET node=${self.id} user=${cc.userId ?? "multi"}`);
      }
      return undefined;                                        // the stock behaviour stores it
    },
  };
  const n = cfg.nodes.find((x) => x.id === 2);
  n.behaviors = [...n.behaviors, sets];
  n.capabilities = { ...n.capabilities, commandClasses: n.capabilities.commandClasses.map((c) =>
    c.ccId === CommandClasses["User Code"] ? { ...c, numUsers: 60 } : c) };
  return cfg;
};
