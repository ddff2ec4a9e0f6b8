// Node-RED as `cargo bench --bench end_to_end` runs it: the flow of this folder (copied into a
// temporary user directory), no editor, warnings only.
module.exports = {
    uiHost: "127.0.0.1",
    flowFile: "flow.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false } },
};
