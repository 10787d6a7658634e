// tb_seq: whole-model testbench of nuq_seq.
//
//   +mem=DIR        `nuq export --word-bits W` output (the seq_* images)
//   +vec=DIR        `nuq vectors` output for the same model
//   +images=N       images to run (the first N of the vectors; default 1)
//   +maxcycles=C    cycle limit per image (default 100000000)
//
// Loads the images, runs every image through the sequencer, compares every layer's output
// with the vectors bit for bit and prints
//   LAYER image=I layer=L op=O cycles=C macs=M           per layer and image
//   MISMATCH layer=L vec=V op=NAME kind=K image=I position=P expected=E got=G   (first one)
//   CHECK layer=L kind=K mismatches=N                     per compared tensor (image 0)
//   SUMMARY images=N layers=L mismatches=M cycles=C       at the end
//   ERROR ...                                             on bad input, then stops
`timescale 1ns/1ps
module tb_seq;
    parameter P = 16;
    parameter W = 64;
    localparam DESC_DEPTH = 4096, WDEPTH = 65536, LVL_DEPTH = 16384, THR_DEPTH = 65536,
               DIR_DEPTH = 8192, BIAS_DEPTH = 8192, AL_DEPTH = 8192, ZP_DEPTH = 1024,
               ACT_DEPTH = 1048576, ACC_DEPTH = 262144, EXP_DEPTH = 4194304;
    localparam [32:0] NOVALUE = 33'h1_0000_0000;

    reg clk = 1'b0, rst = 1'b1, start = 1'b0;
    always #5 clk = ~clk;
    wire busy, done, layer_done;
    wire [15:0] layer, done_layer;
    wire [31:0] layer_cycles, layer_macs;
    nuq_seq #(.P(P), .W(W), .DESC_DEPTH(DESC_DEPTH), .WDEPTH(WDEPTH), .LVL_DEPTH(LVL_DEPTH),
              .THR_DEPTH(THR_DEPTH), .DIR_DEPTH(DIR_DEPTH), .BIAS_DEPTH(BIAS_DEPTH),
              .AL_DEPTH(AL_DEPTH), .ZP_DEPTH(ZP_DEPTH), .ACT_DEPTH(ACT_DEPTH),
              .ACC_DEPTH(ACC_DEPTH)) dut (
        .clk(clk), .rst(rst), .start(start), .busy(busy), .done(done), .layer(layer),
        .layer_done(layer_done), .done_layer(done_layer), .layer_cycles(layer_cycles), .layer_macs(layer_macs));

    reg [8*1024-1:0] memdir, vecdir, fname;
    reg [32:0] expv [0:EXP_DEPTH-1];
    integer images, maxcycles, img, li, p, fd, nl, vi, mism, total_mism, cycles, total_cycles;
    integer in_base, in_len, op, base, len, out_i32, first_reported, cmp_images;
    reg [8*16-1:0] opname;
    reg [31:0] got;

    task fail;
        input [8*200-1:0] msg;
        begin
            $display("ERROR %0s", msg);
            $finish;
        end
    endtask

    task load;   // image NAME into memory WHICH if it has entries
        input [8*32-1:0] name;
        input integer which;
        input integer count;
        input integer depth;
        begin
            if (count > depth) begin
                $display("ERROR %0s needs %0d entries, the simulator has %0d", name, count, depth);
                $finish;
            end
            if (count > 0) begin
                $sformat(fname, "%0s/%0s.mem", memdir, name);
                fd = $fopen(fname, "r");
                if (fd == 0) begin
                    $display("ERROR missing memory image %0s", fname);
                    $finish;
                end
                $fclose(fd);
                case (which)
                    1: $readmemh(fname, dut.wmem);
                    2: $readmemh(fname, dut.lvl_rom);
                    3: $readmemh(fname, dut.thr_mem);
                    4: $readmemh(fname, dut.dir_mem);
                    5: $readmemh(fname, dut.bias_mem);
                    6: $readmemh(fname, dut.amul_mem);
                    7: $readmemh(fname, dut.ashift_mem);
                    default: $readmemh(fname, dut.zp_mem);
                endcase
            end
        end
    endtask

    // Loads vectors file NN_op_kind.hex (or 00_input.hex) into expv; returns 0 if missing.
    function integer load_vec;
        input integer index;
        input [8*16-1:0] op_s;
        input [8*16-1:0] kind;
        input integer count;   // values expected
        integer q;
        begin
            if (index == 0) $sformat(fname, "%0s/00_input.hex", vecdir);
            else $sformat(fname, "%0s/%02d_%0s_%0s.hex", vecdir, index, op_s, kind);
            fd = $fopen(fname, "r");
            if (fd == 0) load_vec = 0;
            else begin
                $fclose(fd);
                if (count + 1 > EXP_DEPTH) begin
                    $display("ERROR %0s: %0d values exceed the testbench's %0d", fname, count, EXP_DEPTH);
                    $finish;
                end
                for (q = 0; q <= count; q = q + 1) expv[q] = NOVALUE;
                $readmemh(fname, expv);
                if (expv[count - 1][32]) begin
                    $display("ERROR vectors file %0s is truncated: fewer than %0d values (%0d images of %0d)",
                             fname, count, cmp_images, count / cmp_images);
                    $finish;
                end
                load_vec = 1;
            end
        end
    endfunction

    task compare;   // layer li's tensor (which: 0 levels, 1 codes, 2 i32) against expv
        input integer which;
        input [8*16-1:0] kind;
        integer q, n_bad;
        reg [31:0] e;
        begin
            n_bad = 0;
            for (q = 0; q < len; q = q + 1) begin
                e = expv[img * len + q][31:0];
                case (which)
                    0: got = {24'd0, dut.act_lvl[base + q]};
                    1: got = {24'd0, dut.act_code[base + q]};
                    default: got = dut.acc_mem[base + q];
                endcase
                if (got !== e) begin
                    n_bad = n_bad + 1;
                    if (first_reported == 0) begin
                        first_reported = 1;
                        $display("MISMATCH layer=%0d vec=%0d op=%0s kind=%0s image=%0d position=%0d expected=%0d got=%0d",
                                 li, vi, opname, kind, img, q,
                                 (which == 2) ? $signed(e) : e, (which == 2) ? $signed(got) : got);
                    end
                end
            end
            if (img == 0 || n_bad != 0)
                $display("CHECK layer=%0d image=%0d kind=%0s mismatches=%0d", li, img, kind, n_bad);
            mism = mism + n_bad;
        end
    endtask

    function [31:0] hdr;
        input integer i;
        hdr = dut.desc_mem[i];
    endfunction

    function [31:0] fld;
        input integer l;
        input integer f;
        fld = dut.desc_mem[32 * (l + 1) + f];
    endfunction

    initial begin
        if (!$value$plusargs("mem=%s", memdir)) fail("no +mem=DIR (nuq export output)");
        if (!$value$plusargs("vec=%s", vecdir)) fail("no +vec=DIR (nuq vectors output)");
        if (!$value$plusargs("images=%d", images)) images = 1;
        if (!$value$plusargs("maxcycles=%d", maxcycles)) maxcycles = 100000000;
        cmp_images = images;
        $sformat(fname, "%0s/seq_layers.mem", memdir);
        fd = $fopen(fname, "r");
        if (fd == 0) begin
            $display("ERROR missing %0s: export the model with a nuq that writes sequencer images", fname);
            $finish;
        end
        $fclose(fd);
        $readmemh(fname, dut.desc_mem);
        if (hdr(0) !== 32'h4E555153) fail("seq_layers.mem is not a sequencer descriptor image");
        if (hdr(1) !== 32'd1) fail("seq_layers.mem has an unknown descriptor version");
        nl = hdr(2);
        if (32 * (nl + 1) > DESC_DEPTH) fail("too many layers for the descriptor memory");
        if (hdr(12) != W) begin
            $display("ERROR the images use %0d-bit weight words, the simulator was built for W=%0d (export with --word-bits %0d)",
                     hdr(12), W, W);
            $finish;
        end
        if (hdr(3) > ACT_DEPTH) fail("the model's activations exceed the activation buffer");
        if (hdr(4) > ACC_DEPTH) fail("the model's accumulators exceed the i32 buffer");
        load("seq_weights", 1, hdr(5), WDEPTH);
        load("seq_levels", 2, hdr(6), LVL_DEPTH);
        load("seq_thresholds", 3, hdr(7), THR_DEPTH);
        load("seq_dirs", 4, hdr(8), DIR_DEPTH);
        load("seq_bias", 5, hdr(9), BIAS_DEPTH);
        load("seq_align_mul", 6, hdr(10), AL_DEPTH);
        load("seq_align_shift", 7, hdr(10), AL_DEPTH);
        load("seq_zp", 8, hdr(11), ZP_DEPTH);
        in_base = hdr(13);
        in_len = hdr(14);
        total_mism = 0;
        total_cycles = 0;
        first_reported = 0;
        for (img = 0; img < images; img = img + 1) begin
            if (load_vec(0, "input", "input", images * in_len) == 0) fail("missing 00_input.hex in +vec");
            for (p = 0; p < in_len; p = p + 1) dut.act_code[in_base + p] = expv[img * in_len + p][7:0];
            rst = 1'b1;
            @(posedge clk); @(posedge clk);
            #1 rst = 1'b0;
            @(posedge clk);
            #1 start = 1'b1;
            @(posedge clk);
            #1 start = 1'b0;
            cycles = 1;
            while (!done && cycles < maxcycles) begin
                if (layer_done)
                    $display("LAYER image=%0d layer=%0d op=%0d cycles=%0d macs=%0d", img, done_layer,
                             fld(done_layer, 0), layer_cycles, layer_macs);
                @(posedge clk);
                #1 cycles = cycles + 1;
            end
            if (!done) begin
                $display("ERROR cycle limit %0d reached in layer %0d (image %0d)", maxcycles, layer, img);
                $finish;
            end
            // the last layer's LAYER line comes with done
            $display("LAYER image=%0d layer=%0d op=%0d cycles=%0d macs=%0d", img, done_layer,
                     fld(done_layer, 0), layer_cycles, layer_macs);
            $display("IMAGE image=%0d cycles=%0d", img, cycles);
            total_cycles = total_cycles + cycles;
            // compare every layer
            vi = 0;
            mism = 0;
            for (li = 1; li < nl; li = li + 1) begin
                op = fld(li, 0);
                if (op != 8) begin
                    vi = vi + 1;
                    base = fld(li, 7);
                    out_i32 = fld(li, 8);
                    len = fld(li, 12) * fld(li, 13) * fld(li, 14);
                    case (op)
                        2: opname = "conv";
                        3: opname = "linear";
                        4: opname = "maxpool";
                        6: opname = "gap";
                        10: opname = "add";
                        default: opname = "unknown";
                    endcase
                    if (out_i32 != 0) begin
                        if (load_vec(vi, opname, (op == 3) ? "logits" : "accumulator", images * len) == 0) begin
                            $display("ERROR missing vectors for layer %0d (%0s): %0s", li, opname, fname);
                            $finish;
                        end
                        compare(2, (op == 3) ? "logits" : "accumulator");
                    end else begin
                        if (load_vec(vi, opname, "codes", images * len) != 0) compare(1, "codes");
                        if (load_vec(vi, opname, "levels", images * len) == 0) begin
                            $display("ERROR missing vectors for layer %0d (%0s): %0s", li, opname, fname);
                            $finish;
                        end
                        compare(0, "levels");
                    end
                end
            end
            total_mism = total_mism + mism;
        end
        $display("SUMMARY images=%0d layers=%0d mismatches=%0d cycles=%0d", images, nl, total_mism, total_cycles);
        $finish;
    end
endmodule
