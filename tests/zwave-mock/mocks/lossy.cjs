// lockhub: the locks of locks.cjs, but node 2 sits behind a lossy mesh: it
// drops every third User Code Get (a slot read) it receives: the frame is
// acknowledged, the report never comes. Each one is logged as
// "MOCK_GET node=2 user=<id> n=<count>", each dropped one as
// "MOCK_GET_DROPPED node=2 user=<id> n=<count>" (tests count them). The
// interview's Gets pass, so a driver without retries still meets the lock. Node 2 has 12 user codes (a short walk).
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { UserCodeCCGet } = ctx.require("@zwave-js/cc/UserCodeCC");
  let gets = 0;
  const lossy = {
    handleCC(_controller, self, cc) {
      if (!(cc instanceof UserCodeCCGet)) return undefined;
      gets += 1;
      if (gets % 3 === 0) {
        console.log(`MOCK_GET_DROPPED node=${self.id} user=${cc.userId} n=${gets}`);
        return { action: "stop" };
      }
      console.log(`MOCK_GET node=${self.id} user=${cc.userId} n=${gets}`);
      return undefined;
    },
  };
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const n = cfg.nodes.find((x) => x.id === 2);
  n.behaviors = [...n.behaviors, lossy];
  n.capabilities = { ...n.capabilities, commandClasses: n.capabilities.commandClasses.map((c) =>
    c.ccId === CommandClasses["User Code"] ? { ...c, numUsers: 12 } : c) };
  return cfg;
};
