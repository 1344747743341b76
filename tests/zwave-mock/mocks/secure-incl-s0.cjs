// lockhub: shared/tools/zwave-mock/mocks/secure-incl-s0.cjs with the strict behaviours and the control channel of
// secure-locks.cjs: node 5 (an S0-only lock) joins on Add Node, then bootstraps S0. Afterwards it ignores User Code /
// Door Lock commands not in S0.
exports.default = (ctx) => {
  const { CommandClasses, SecurityClass } = ctx.require("@zwave-js/core");
  return module.require("./secure-locks.cjs").build(ctx, { pending: {
    id: 5,
    ownClass: (S) => S.S0_Legacy,
    capabilities: {
      genericDeviceClass: 0x40, specificDeviceClass: 0x03, manufacturerId: 0x0090, productType: 1, productId: 0x0642,
      commandClasses: [CommandClasses.Version, CommandClasses.Security,
        { ccId: CommandClasses["User Code"], version: 1, numUsers: 30, secure: true },
        { ccId: CommandClasses["Door Lock"], version: 2, secure: true }],
      securityClasses: new Set([SecurityClass.S0_Legacy]),
    },
  } });
};
