// lockhub: the locks of locks.cjs, but node 2 masks codes on read-back (a
// User Code Report of an occupied slot shows "****") and has no Supervision,
// so a Set can only be checked by reading back. Every User Code Set the node
// receives is logged as "MOCK_UC_SET node=2 user=<id>" (tests count them).
// The stock checksum still covers the real codes, as on such locks.
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const { UserCodeCCGet, UserCodeCCReport, UserCodeCCSet, UserCodeCCExtendedUserCodeSet } =
    ctx.require("@zwave-js/cc/UserCodeCC");
  const masking = {
    handleCC(controller, self, cc) {
      if (cc instanceof UserCodeCCSet || cc instanceof UserCodeCCExtendedUserCodeSet) {
        console.log(`MOCK_UC_SET node=${self.id} user=${cc.userId ?? "multi"}`);
        return undefined;                                      // the stock behaviour stores it
      }
      if (!(cc instanceof UserCodeCCGet)) return undefined;
      const status = self.state.get(`UserCode_userIdStatus_${cc.userId}`) ?? 0;
      const occupied = status === 1 || status === 2;
      return { action: "sendCC", cc: new UserCodeCCReport({
        nodeId: controller.ownNodeId, userId: cc.userId, userIdStatus: status,
        userCode: occupied ? "****" : "",
      }) };
    },
  };
  const n = cfg.nodes.find((x) => x.id === 2);
  n.behaviors = [...n.behaviors, masking];
  n.capabilities = { ...n.capabilities,
    commandClasses: n.capabilities.commandClasses.filter((c) => c !== CommandClasses.Supervision) };
  return cfg;
};
