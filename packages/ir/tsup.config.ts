import { library } from '../../tsup.shared';

// shims: import.meta.url in the CJS build, which finds the optional @deepwell/kernels-native.
export default library({ shims: true });
