// Next.js looks for its configuration in the project directory (web/); the real one is the root next.config.js.
export { default } from '../next.config.js';
