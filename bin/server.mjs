// pm2's entry for the key server: pm2 treats a `.ts` script as needing ts-node (and logs
// "TypeScript support unavailable" when it is missing); this plain module is loaded instead, and
// tsx (node_args: --import tsx) runs the TypeScript it imports.
import '../server/index.ts';
