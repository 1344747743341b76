// lockhub: the three locks of locks.cjs, but their User Code Capabilities
// Report offers Extended User Code Set with several codes per frame (the stock
// mock always says no, although it carries such frames out).
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { UserCodeCCCapabilitiesGet, UserCodeCCCapabilitiesReport } = ctx.require("@zwave-js/cc/UserCodeCC");
  const multiSet = {
    handleCC(controller, _self, cc) {
      if (!(cc instanceof UserCodeCCCapabilitiesGet)) return undefined;
      return { action: "sendCC", cc: new UserCodeCCCapabilitiesReport({
        nodeId: controller.ownNodeId,
        supportsAdminCode: true, supportsAdminCodeDeactivation: true, supportsUserCodeChecksum: true,
        supportsMultipleUserCodeReport: false, supportsMultipleUserCodeSet: true,
        supportedUserIDStatuses: [0, 1, 2], supportedKeypadModes: [0], supportedASCIIChars: "0123456789",
      }) };
    },
  };
  for (const n of cfg.nodes) n.behaviors = [...n.behaviors, multiSet];
  return cfg;
};
