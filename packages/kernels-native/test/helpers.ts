export { errorOf } from '../../../testing/errors.js';
