// pm2 process file: npx pm2 start ecosystem.config.cjs
// Both apps run from the TypeScript sources through tsx (a runtime dependency), so there is no
// build step to forget after an update: `git pull && npx pm2 reload ecosystem.config.cjs`.
// The scripts are the plain modules in bin/, which import the sources (pm2 would look for
// ts-node for a .ts script).
// Both read .env from this folder (cwd); real environment variables win.
// PM2_LOG_DIR moves pm2's own stdout/stderr files (default logs/).
const logDir = process.env.PM2_LOG_DIR || 'logs';

/** Settings both apps share; each app's own block says what differs. */
const common = (name) => ({
  name,
  interpreter: 'node',
  node_args: '--import tsx',
  cwd: __dirname,
  // One instance each: the file state store refuses cluster mode (see README).
  exec_mode: 'fork',
  instances: 1,
  // Each app calls process.send('ready') when it can serve; pm2 waits for it on start and reload.
  wait_ready: true,
  out_file: `${logDir}/${name}.out.log`,
  error_file: `${logDir}/${name}.err.log`,
  merge_logs: true,
  autorestart: true,
  max_restarts: 20,
  // A configuration error (a missing token, a bad variable, a state file in use) exits 78: restarting
  // cannot fix it, so pm2 stops the app and `pm2 logs` shows the one line naming the problem.
  stop_exit_codes: [78],
});

module.exports = {
  apps: [
    {
      ...common('keywarden-server'),
      script: 'bin/server.mjs',
      listen_timeout: 15000,
      // SIGINT, then this long for the final state save before pm2 kills the process.
      kill_timeout: 10000,
      restart_delay: 1000,
    },
    {
      ...common('keywarden-bot'),
      script: 'bin/bot.mjs',
      // Ready once logged in to Discord.
      listen_timeout: 30000,
      kill_timeout: 5000,
      // A bad token exits 1 at once; back off instead of hammering Discord's login.
      exp_backoff_restart_delay: 2000,
    },
  ],
};

// Scale-out: several server instances sharing one Redis. Replace the keywarden-server block above
// with this one (and keep STATE_BACKEND=redis, REDIS_URL in .env). The file store refuses cluster
// mode, since its instances would not share counts.
//
//   {
//     ...common('keywarden-server'),
//     script: 'bin/server.mjs',
//     exec_mode: 'cluster',
//     instances: 2,               // or 'max': one per core
//     env: { STATE_BACKEND: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' },
//     listen_timeout: 15000,
//     kill_timeout: 5000,         // nothing to save: state lives in Redis
//   },
