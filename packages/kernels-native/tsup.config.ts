import { library } from '../../tsup.shared';

// shims: import.meta.url in the CJS build, which the loader uses to find prebuilds/.
export default library({ shims: true });
