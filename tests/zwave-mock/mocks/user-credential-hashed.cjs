// lockhub: user-credential.cjs, but node 2 keeps only a hash of each PIN
// (maxCredentialHashLength 32: its Credential Reports say "no read-back" and
// carry no PIN), while its PIN credential checksum still covers the
// credential data it stores, as zwave-js's mock computes it. Every
// Credential Set (add, modify or delete) node 2 receives is logged as
// "MOCK_UCRED_SET node=2 op=<operation> slot=<slot>" (tests count them).
const base = require("./user-credential.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const { UserCredentialCCCredentialSet } = ctx.require("@zwave-js/cc/UserCredentialCC");
  const sets = {
    handleCC(_controller, self, cc) {
      if (cc instanceof UserCredentialCCCredentialSet) {
        console.log(`MOCK_UCRED_SET node=${self.id} op=${cc.operationType} slot=${cc.credentialSlot}`);
      }
      return undefined;                                        // the stock behaviour stores it
    },
  };
  const n = cfg.nodes.find((x) => x.id === 2);
  n.behaviors = [...n.behaviors, sets];
  n.capabilities = { ...n.capabilities, commandClasses: n.capabilities.commandClasses.map((c) => {
    if (c.ccId !== CommandClasses["User Credential"]) return c;
    const types = new Map([...c.supportedCredentialTypes].map(([t, caps]) =>
      [t, { ...caps, maxCredentialHashLength: 32 }]));
    return { ...c, supportedCredentialTypes: types };
  }) };
  return cfg;
};
