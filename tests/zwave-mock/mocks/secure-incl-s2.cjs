// lockhub: shared/tools/zwave-mock/mocks/secure-incl-s2.cjs with the strict behaviours and the control channel of
// secure-locks.cjs: no nodes at start; node 4 (S2 Authenticated + Access Control lock) joins on Add Node, then
// bootstraps S2. Its DSK PIN is printed at setup ("pinFromPub01=", computed from public-key bytes 0-1: the mock's
// own s2Pin reads the wrong bytes). After the bootstrap it ignores User Code / Door Lock commands not in
// S2_AccessControl.
exports.default = (ctx) => {
  const { CommandClasses, SecurityClass } = ctx.require("@zwave-js/core");
  return module.require("./secure-locks.cjs").build(ctx, { pending: {
    id: 4,
    ownClass: (S) => S.S2_AccessControl,
    capabilities: {
      genericDeviceClass: 0x40, specificDeviceClass: 0x03, manufacturerId: 0x0090, productType: 1, productId: 0x0642,
      commandClasses: [
        CommandClasses.Version, CommandClasses["Manufacturer Specific"], CommandClasses["Z-Wave Plus Info"],
        CommandClasses["Security 2"], CommandClasses.Supervision,
        { ccId: CommandClasses["User Code"], version: 2, numUsers: 30, secure: true },
        { ccId: CommandClasses["Door Lock"], version: 4, secure: true },
      ],
      securityClasses: new Set([SecurityClass.S2_Authenticated, SecurityClass.S2_AccessControl]),
    },
    setup(node) {
      const pub = Buffer.from(node.ecdhKeyPair.publicKey);
      console.log(`MOCKNODE dsk=${node.dsk} s2Pin=${node.s2Pin} pub=${pub.toString("hex")} pinFromPub01=${String(pub.readUInt16BE(0)).padStart(5, "0")}`);
    },
  } });
};
