// lockhub: the locks of locks.cjs, but driven by User Credential CC (0x83)
// instead of User Code: 20 users, 20 PIN slots taking 6 to 8 digits (read
// back, PIN credential checksum), no Schedule Entry Lock. Node 4 (FLiRS)
// keeps User Code, to show a lock without User Credential stays as before.
// The codes are in the mock's state under UserCredential_cred_1_<slot>
// ({"cmd":"state","node":2,"prefix":"UserCredential_"}).
const base = require("./locks.cjs").default;
exports.default = (ctx) => {
  const cfg = base(ctx);
  const { CommandClasses } = ctx.require("@zwave-js/core");
  const userCredential = {
    ccId: CommandClasses["User Credential"], version: 1,
    numberOfSupportedUsers: 20, supportedCredentialRules: [1], maxUserNameLength: 16,
    supportsAllUsersChecksum: true, supportsUserChecksum: true, supportsCredentialChecksum: true,
    supportedUserTypes: [0], supportsAdminCode: false,
    supportedCredentialTypes: new Map([[1, {
      numberOfCredentialSlots: 20, minCredentialLength: 6, maxCredentialLength: 8,
      maxCredentialHashLength: 0, supportsCredentialLearn: false,
    }]]),
  };
  const replaced = [CommandClasses["User Code"], CommandClasses["Schedule Entry Lock"]];
  for (const n of cfg.nodes) {
    if (n.id === 4) continue;
    const ccs = n.capabilities.commandClasses.filter((c) => !replaced.includes(c.ccId ?? c));
    n.capabilities = { ...n.capabilities, commandClasses: [...ccs, userCredential] };
  }
  return cfg;
};
