// nuq_seq: the layer sequencer. Walks the layer descriptors of `nuq export`'s seq_layers
// image and runs the whole network on chip: image codes in (act_code at the input's
// address), i32 logits out (acc_mem at the classifier's address), no host in between.
//
// Datapath per layer op (descriptor fields: nuq-fpga-fmt/src/seq.rs, rtl/README.md):
//   input / input_zp  codes -> levels through the input codebook, one element per cycle
//   conv2d / linear   P MAC lanes over the flattened stream of dot products (output pixel
//                     major, output channel next, then the file's weight order
//                     [c_in][kh][kw]); weight words -> nuq_unpack -> nuq_codebook_lut ->
//                     nuq_mac_array; a P-lane window spans at most one output boundary, so
//                     at most one accumulator completes per cycle; it is requantized the
//                     next cycle by nuq_thresh_bank and decoded through the output codebook
//                     (or stored as i32 when act_bits = 0). A linear layer is a convolution
//                     whose window is its whole input (the file's [c][h][w] order).
//   aligned_add       nuq_aligned_add + nuq_thresh_bank, one element per cycle
//   maxpool2d         nuq_maxpool over the window of levels and of codes, one output per cycle
//   global_avgpool    nuq_gap, one input level per cycle
//   flatten           nothing (it aliases its input)
// Activation buffers: act_lvl (levels) and act_code (codes) share addresses, acc_mem holds
// i32 tensors; every tensor has its own region (descriptor addresses). The memories are
// plain arrays read combinationally by several ports: a cycle-counted reference, not an
// area-optimised build (a real build banks them).
`default_nettype none
module nuq_seq #(
    parameter P          = 16,        // MAC lanes
    parameter W          = 64,        // weight word bits (nuq export --word-bits)
    parameter DESC_DEPTH = 4096,
    parameter WDEPTH     = 65536,
    parameter LVL_DEPTH  = 16384,
    parameter THR_DEPTH  = 65536,
    parameter DIR_DEPTH  = 8192,
    parameter BIAS_DEPTH = 8192,
    parameter AL_DEPTH   = 8192,
    parameter ZP_DEPTH   = 1024,
    parameter ACT_DEPTH  = 1048576,
    parameter ACC_DEPTH  = 262144,
    parameter KMAX2      = 16         // largest max-pool window (kh * kw)
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        start,        // run the network once
    output reg         busy,
    output reg         done,         // one-cycle pulse at the end
    output reg  [15:0] layer,        // layer being executed
    output reg         layer_done,   // one-cycle pulse when a layer ends
    output reg  [15:0] done_layer,   // which layer that was
    output reg  [31:0] layer_cycles, // cycles of that layer
    output reg  [31:0] layer_macs    // valid MAC lanes of that layer
);
    localparam [31:0] NONE = 32'hFFFF_FFFF;
    localparam OP_INPUT = 1, OP_CONV = 2, OP_LINEAR = 3, OP_MAXPOOL = 4, OP_GAP = 6,
               OP_FLATTEN = 8, OP_ADD = 10, OP_INPUT_ZP = 11;
    localparam NT = 255;

    // ---- memories (loaded by the testbench with $readmemh) ----
    reg [31:0]  desc_mem  [0:DESC_DEPTH-1];
    reg [W-1:0] wmem      [0:WDEPTH-1];
    reg [7:0]   lvl_rom   [0:LVL_DEPTH-1];
    reg [31:0]  thr_mem   [0:THR_DEPTH-1];
    reg [0:0]   dir_mem   [0:DIR_DEPTH-1];
    reg [31:0]  bias_mem  [0:BIAS_DEPTH-1];
    reg [31:0]  amul_mem  [0:AL_DEPTH-1];
    reg [5:0]   ashift_mem[0:AL_DEPTH-1];
    reg [7:0]   zp_mem    [0:ZP_DEPTH-1];
    reg [7:0]   act_lvl   [0:ACT_DEPTH-1];
    reg [7:0]   act_code  [0:ACT_DEPTH-1];
    reg [31:0]  acc_mem   [0:ACC_DEPTH-1];

    // ---- FSM ----
    localparam S_IDLE = 0, S_FETCH = 1, S_LUT = 2, S_RUN = 3, S_DRAIN = 4, S_NEXT = 5;
    reg [2:0]  state;
    reg [31:0] nlayers;
    reg [31:0] cyc, macs;

    // descriptor of the current layer
    reg [31:0] d_op, d_wbits, d_abits, d_in0, d_in0_i32, d_in1, d_in1_i32, d_out, d_out_i32;
    reg [31:0] d_ic, d_ih, d_iw, d_oc, d_oh, d_ow, d_kh, d_kw, d_sh, d_sw, d_pt, d_pl;
    reg [31:0] d_wbase, d_wpr, d_wcb, d_bias, d_thr, d_dir, d_acb, d_align, d_mshift;
    reg [31:0] d_padzp, d_incb;
    reg [31:0] d_k, d_lanes, d_n;      // K = ic*kh*kw, lanes per weight word, outputs
    wire [31:0] dbase = 32 * ({16'd0, layer} + 32'd1);

    // ---- element loop (input, aligned_add, maxpool, gap) ----
    reg [31:0] e, e_c, e_oy, e_ox, e_p;

    // ---- conv stream state: position of the next lane ----
    reg [31:0] s_oy, s_ox, s_oc, s_ci, s_ky, s_kx, s_kpos, s_wword, s_wlane, s_q;
    reg        s_done;
    reg        s_first;                // the layer's first window (accumulator starts at bias)
    reg [31:0] r_q, r_oc;              // output index and channel of the result in flight
    reg [8:0]  lut_cnt;

    // ---- combinational lane walk ----
    reg [P-1:0]   lane_valid, lane_seg;
    reg [P-1:0]   lane_inside;
    reg [P*8-1:0] lane_stored, lane_zpl;
    wire [P*8-1:0] lane_act;
    wire          has_zp = (d_padzp != NONE);
    reg [P*32-1:0] lane_waddr;
    reg [P*9-1:0]  lane_lane;
    reg [31:0] t_oy, t_ox, t_oc, t_ci, t_ky, t_kx, t_kpos, t_wword, t_wlane, t_q;
    reg        t_done, t_seg, t_stop, t_finish;
    reg [31:0] t_fin_oc, t_next_oc;
    reg signed [31:0] iy, ix;
    reg [31:0] aaddr;
    reg        in_bounds;
    reg [7:0]  zp_code, zp_lvl, stored;
    integer l;
    always @(*) begin
        t_oy = s_oy; t_ox = s_ox; t_oc = s_oc; t_ci = s_ci; t_ky = s_ky; t_kx = s_kx;
        t_kpos = s_kpos; t_wword = s_wword; t_wlane = s_wlane; t_q = s_q; t_done = s_done;
        t_seg = 1'b0; t_stop = 1'b0; t_finish = 1'b0; t_fin_oc = s_oc; t_next_oc = s_oc;
        lane_valid = {P{1'b0}}; lane_seg = {P{1'b0}}; lane_inside = {P{1'b0}};
        lane_stored = {P*8{1'b0}}; lane_zpl = {P*8{1'b0}};
        lane_waddr = {P*32{1'b0}}; lane_lane = {P*9{1'b0}};
        for (l = 0; l < P; l = l + 1) begin
            if (t_done || (t_seg && t_kpos == d_k - 1)) t_stop = 1'b1;
            if (!t_stop) begin
                lane_valid[l] = 1'b1;
                lane_seg[l] = t_seg;
                iy = $signed(t_oy * d_sh + t_ky) - $signed(d_pt);
                ix = $signed(t_ox * d_sw + t_kx) - $signed(d_pl);
                in_bounds = iy >= 0 && ix >= 0 && iy < $signed(d_ih) && ix < $signed(d_iw);
                aaddr = d_in0 + ((iy * d_iw + ix) * d_ic + t_ci);
                stored = in_bounds ? act_lvl[aaddr % ACT_DEPTH] : 8'd0;
                zp_code = (d_padzp == NONE) ? 8'd0 : zp_mem[(d_padzp + t_ci) % ZP_DEPTH];
                zp_lvl = (d_incb == NONE) ? zp_code : lvl_rom[(d_incb + zp_code) % LVL_DEPTH];
                lane_inside[l] = in_bounds;
                lane_stored[8*l +: 8] = stored;
                lane_zpl[8*l +: 8] = zp_lvl;
                lane_waddr[32*l +: 32] = d_wbase + t_oc * d_wpr + t_wword;
                lane_lane[9*l +: 9] = t_wlane[8:0];
                // advance one element of the dot product
                t_kpos = t_kpos + 1;
                if (t_wlane + 1 == d_lanes) begin t_wlane = 0; t_wword = t_wword + 1; end
                else t_wlane = t_wlane + 1;
                if (t_kx + 1 == d_kw) begin
                    t_kx = 0;
                    if (t_ky + 1 == d_kh) begin t_ky = 0; t_ci = t_ci + 1; end
                    else t_ky = t_ky + 1;
                end else t_kx = t_kx + 1;
                if (t_kpos == d_k) begin
                    // output t_q ends in this lane
                    t_finish = 1'b1; t_fin_oc = t_oc;
                    t_seg = 1'b1; t_kpos = 0; t_kx = 0; t_ky = 0; t_ci = 0;
                    t_wword = 0; t_wlane = 0; t_q = t_q + 1;
                    if (t_oc + 1 == d_oc) begin
                        t_oc = 0;
                        if (t_ox + 1 == d_ow) begin
                            t_ox = 0;
                            if (t_oy + 1 == d_oh) t_done = 1'b1;
                            else t_oy = t_oy + 1;
                        end else t_ox = t_ox + 1;
                    end else t_oc = t_oc + 1;
                    t_next_oc = t_oc;
                end
            end
        end
    end

    // ---- weight decode: unpack + codebook LUT ----
    wire [P*8-1:0] lane_idx, lane_wgt;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : lane_g
            wire [31:0] wa = lane_waddr[32*g +: 32];
            nuq_unpack #(.W(W)) u_unpack (
                .word(wmem[wa % WDEPTH]), .bits(d_wbits[3:0]), .lane(lane_lane[9*g +: 9]),
                .index(lane_idx[8*g +: 8]));
            nuq_pad u_pad (
                .in_bounds(lane_inside[g]), .level(lane_stored[8*g +: 8]), .has_zp(has_zp),
                .zp_level(lane_zpl[8*g +: 8]), .value(lane_act[8*g +: 8]));
        end
    endgenerate
    wire       lut_we = (state == S_LUT);
    wire [7:0] lut_wdata = lvl_rom[(d_wcb + {23'd0, lut_cnt}) % LVL_DEPTH];
    nuq_codebook_lut #(.P(P)) u_lut (
        .clk(clk), .we(lut_we), .waddr(lut_cnt[7:0]), .wdata(lut_wdata),
        .raddr(lane_idx), .rdata(lane_wgt));

    // ---- MAC array ----
    wire        is_mac = (d_op == OP_CONV || d_op == OP_LINEAR);
    wire        mac_en = (state == S_RUN) && is_mac && !s_done;
    wire [31:0] bias_cur  = (d_bias == NONE) ? 32'd0 : bias_mem[(d_bias + s_oc) % BIAS_DEPTH];
    wire [31:0] bias_next = (d_bias == NONE) ? 32'd0 : bias_mem[(d_bias + t_next_oc) % BIAS_DEPTH];
    wire        mac_done;
    wire [31:0] mac_result;
    nuq_mac_array #(.P(P)) u_mac (
        .clk(clk), .rst(rst), .en(mac_en), .act(lane_act), .wgt(lane_wgt),
        .valid(lane_valid), .seg(lane_seg), .start(s_first), .bias_cur(bias_cur),
        .finish(t_finish), .bias_next(bias_next), .done(mac_done), .result(mac_result));

    // ---- element datapath: aligned_add ----
    wire [31:0] add_a = acc_mem[(d_in0 + e) % ACC_DEPTH];
    wire [31:0] add_v = d_in1_i32[0] ? acc_mem[(d_in1 + e) % ACC_DEPTH]
                                     : {24'd0, act_lvl[(d_in1 + e) % ACT_DEPTH]};
    wire [63:0] add_sum;
    nuq_aligned_add u_add (
        .a(add_a), .v(add_v), .m(amul_mem[(d_align + e_c) % AL_DEPTH]),
        .s(ashift_mem[(d_align + e_c) % AL_DEPTH]), .main_shift(d_mshift[4:0]), .sum(add_sum));

    // ---- threshold bank (shared by conv results and joins) ----
    wire        rq_add = (d_op == OP_ADD);
    wire [31:0] rq_ch = rq_add ? e_c : r_oc;
    wire [63:0] rq_value = rq_add ? add_sum : {{32{mac_result[31]}}, mac_result};
    wire [31:0] rq_t = (32'd1 << d_abits[3:0]) - 32'd1;
    reg  [NT*32-1:0] rq_thr;
    integer k;
    always @(*) begin
        rq_thr = {NT*32{1'b0}};
        for (k = 0; k < NT; k = k + 1)
            if (k < rq_t) rq_thr[32*k +: 32] = thr_mem[(d_thr + rq_ch * rq_t + k) % THR_DEPTH];
    end
    wire [7:0] rq_code;
    nuq_thresh_bank #(.MAXB(8)) u_thr (
        .value(rq_value), .thr(rq_thr), .bits(d_abits[3:0]),
        .falling(dir_mem[(d_dir + rq_ch) % DIR_DEPTH][0]), .code(rq_code));
    wire [7:0] rq_level = (d_acb == NONE) ? rq_code : lvl_rom[(d_acb + rq_code) % LVL_DEPTH];

    // ---- max-pool window ----
    reg [KMAX2*8-1:0] mp_lvl, mp_code;
    integer wy, wx;
    reg [31:0] mp_addr;
    always @(*) begin
        mp_lvl = {KMAX2*8{1'b0}};
        mp_code = {KMAX2*8{1'b0}};
        for (wy = 0; wy < KMAX2; wy = wy + 1)
            for (wx = 0; wx < KMAX2; wx = wx + 1)
                if (wy < d_kh && wx < d_kw && wy * d_kw + wx < KMAX2) begin
                    mp_addr = d_in0 + (((e_oy * d_sh + wy) * d_iw + e_ox * d_sw + wx) * d_ic + e_c);
                    mp_lvl[8*(wy * d_kw + wx) +: 8] = act_lvl[mp_addr % ACT_DEPTH];
                    mp_code[8*(wy * d_kw + wx) +: 8] = act_code[mp_addr % ACT_DEPTH];
                end
    end
    wire [7:0] mp_max_lvl, mp_max_code;
    nuq_maxpool #(.KMAX2(KMAX2)) u_mp_lvl (.win(mp_lvl), .n(d_kh[7:0] * d_kw[7:0]), .max(mp_max_lvl));
    nuq_maxpool #(.KMAX2(KMAX2)) u_mp_code (.win(mp_code), .n(d_kh[7:0] * d_kw[7:0]), .max(mp_max_code));

    // ---- global average pool ----
    wire [31:0] hw = d_ih * d_iw;
    wire        gap_en = (state == S_RUN) && (d_op == OP_GAP) && (e < d_n * hw);
    wire        gap_first = (e_p == 0);
    wire        gap_last = (e_p + 1 == hw);
    wire        gap_valid;
    wire [7:0]  gap_avg;
    reg  [31:0] gap_c;
    nuq_gap u_gap (
        .clk(clk), .rst(rst), .en(gap_en), .first(gap_first), .last(gap_last),
        .din(act_lvl[(d_in0 + e_p * d_ic + e_c) % ACT_DEPTH]), .n(hw[23:0]),
        .valid(gap_valid), .avg(gap_avg));

    // ---- sequencing ----
    wire [31:0] in_code = {24'd0, act_code[(d_out + e) % ACT_DEPTH]};
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE; busy <= 1'b0; done <= 1'b0; layer <= 16'd0; layer_done <= 1'b0;
            layer_cycles <= 32'd0; layer_macs <= 32'd0;
        end else begin
            done <= 1'b0;
            layer_done <= 1'b0;
            if (state != S_IDLE) cyc <= cyc + 32'd1;
            case (state)
            S_IDLE: if (start) begin
                busy <= 1'b1; layer <= 16'd0; nlayers <= desc_mem[2];
                state <= S_FETCH; cyc <= 32'd0; macs <= 32'd0;
            end
            S_FETCH: begin
                d_op      <= desc_mem[(dbase + 0) % DESC_DEPTH];
                d_wbits   <= desc_mem[(dbase + 1) % DESC_DEPTH];
                d_abits   <= desc_mem[(dbase + 2) % DESC_DEPTH];
                d_in0     <= desc_mem[(dbase + 3) % DESC_DEPTH];
                d_in0_i32 <= desc_mem[(dbase + 4) % DESC_DEPTH];
                d_in1     <= desc_mem[(dbase + 5) % DESC_DEPTH];
                d_in1_i32 <= desc_mem[(dbase + 6) % DESC_DEPTH];
                d_out     <= desc_mem[(dbase + 7) % DESC_DEPTH];
                d_out_i32 <= desc_mem[(dbase + 8) % DESC_DEPTH];
                d_ic      <= desc_mem[(dbase + 9) % DESC_DEPTH];
                d_ih      <= desc_mem[(dbase + 10) % DESC_DEPTH];
                d_iw      <= desc_mem[(dbase + 11) % DESC_DEPTH];
                d_oc      <= desc_mem[(dbase + 12) % DESC_DEPTH];
                d_oh      <= desc_mem[(dbase + 13) % DESC_DEPTH];
                d_ow      <= desc_mem[(dbase + 14) % DESC_DEPTH];
                d_kh      <= desc_mem[(dbase + 15) % DESC_DEPTH];
                d_kw      <= desc_mem[(dbase + 16) % DESC_DEPTH];
                d_sh      <= desc_mem[(dbase + 17) % DESC_DEPTH];
                d_sw      <= desc_mem[(dbase + 18) % DESC_DEPTH];
                d_pt      <= desc_mem[(dbase + 19) % DESC_DEPTH];
                d_pl      <= desc_mem[(dbase + 20) % DESC_DEPTH];
                d_wbase   <= desc_mem[(dbase + 21) % DESC_DEPTH];
                d_wpr     <= desc_mem[(dbase + 22) % DESC_DEPTH];
                d_wcb     <= desc_mem[(dbase + 23) % DESC_DEPTH];
                d_bias    <= desc_mem[(dbase + 24) % DESC_DEPTH];
                d_thr     <= desc_mem[(dbase + 25) % DESC_DEPTH];
                d_dir     <= desc_mem[(dbase + 26) % DESC_DEPTH];
                d_acb     <= desc_mem[(dbase + 27) % DESC_DEPTH];
                d_align   <= desc_mem[(dbase + 28) % DESC_DEPTH];
                d_mshift  <= desc_mem[(dbase + 29) % DESC_DEPTH];
                d_padzp   <= desc_mem[(dbase + 30) % DESC_DEPTH];
                d_incb    <= desc_mem[(dbase + 31) % DESC_DEPTH];
                d_k       <= desc_mem[(dbase + 9) % DESC_DEPTH] * desc_mem[(dbase + 15) % DESC_DEPTH]
                             * desc_mem[(dbase + 16) % DESC_DEPTH];
                d_lanes   <= (desc_mem[(dbase + 1) % DESC_DEPTH] == 0) ? 32'd1
                             : W / desc_mem[(dbase + 1) % DESC_DEPTH];
                d_n       <= desc_mem[(dbase + 12) % DESC_DEPTH] * desc_mem[(dbase + 13) % DESC_DEPTH]
                             * desc_mem[(dbase + 14) % DESC_DEPTH];
                e <= 0; e_c <= 0; e_oy <= 0; e_ox <= 0; e_p <= 0; gap_c <= 0;
                s_oy <= 0; s_ox <= 0; s_oc <= 0; s_ci <= 0; s_ky <= 0; s_kx <= 0;
                s_kpos <= 0; s_wword <= 0; s_wlane <= 0; s_q <= 0; s_done <= 1'b0;
                s_first <= 1'b1; lut_cnt <= 9'd0;
                state <= (desc_mem[(dbase + 0) % DESC_DEPTH] == OP_CONV
                          || desc_mem[(dbase + 0) % DESC_DEPTH] == OP_LINEAR) ? S_LUT : S_RUN;
            end
            S_LUT: begin
                lut_cnt <= lut_cnt + 9'd1;
                if (lut_cnt + 9'd1 == (9'd1 << d_wbits[3:0])) state <= S_RUN;
            end
            S_RUN: begin
                case (d_op)
                OP_INPUT, OP_INPUT_ZP: begin
                    act_lvl[(d_out + e) % ACT_DEPTH] <=
                        (d_acb == NONE) ? in_code[7:0] : lvl_rom[(d_acb + in_code) % LVL_DEPTH];
                    e <= e + 1;
                    if (e + 1 == d_n) state <= S_NEXT;
                end
                OP_CONV, OP_LINEAR: begin
                    if (!s_done) begin
                        s_oy <= t_oy; s_ox <= t_ox; s_oc <= t_oc; s_ci <= t_ci; s_ky <= t_ky;
                        s_kx <= t_kx; s_kpos <= t_kpos; s_wword <= t_wword; s_wlane <= t_wlane;
                        s_q <= t_q; s_done <= t_done; s_first <= 1'b0;
                        macs <= macs + count_ones(lane_valid);
                        if (t_finish) begin r_q <= s_q; r_oc <= t_fin_oc; end
                    end else if (!mac_done) begin
                        state <= S_NEXT;
                    end
                end
                OP_ADD: begin
                    act_code[(d_out + e) % ACT_DEPTH] <= rq_code;
                    act_lvl[(d_out + e) % ACT_DEPTH] <= rq_level;
                    e <= e + 1;
                    e_c <= (e_c + 1 == d_oc) ? 0 : e_c + 1;
                    if (e + 1 == d_n) state <= S_NEXT;
                end
                OP_MAXPOOL: begin
                    act_code[(d_out + e) % ACT_DEPTH] <= mp_max_code;
                    act_lvl[(d_out + e) % ACT_DEPTH] <= mp_max_lvl;
                    e <= e + 1;
                    if (e_c + 1 == d_oc) begin
                        e_c <= 0;
                        if (e_ox + 1 == d_ow) begin e_ox <= 0; e_oy <= e_oy + 1; end
                        else e_ox <= e_ox + 1;
                    end else e_c <= e_c + 1;
                    if (e + 1 == d_n) state <= S_NEXT;
                end
                OP_GAP: begin
                    if (e < d_n * hw) begin
                        e <= e + 1;
                        if (e_p + 1 == hw) begin e_p <= 0; e_c <= e_c + 1; end
                        else e_p <= e_p + 1;
                    end else if (!gap_valid) state <= S_NEXT;
                end
                default: state <= S_NEXT;   // flatten
                endcase
            end
            S_NEXT: begin
                layer_done <= 1'b1;
                done_layer <= layer;
                layer_cycles <= cyc + 32'd1;
                layer_macs <= macs;
                cyc <= 32'd0; macs <= 32'd0;
                if ({16'd0, layer} + 32'd1 == nlayers) begin
                    state <= S_IDLE; busy <= 1'b0; done <= 1'b1;
                end else begin
                    layer <= layer + 16'd1;
                    state <= S_FETCH;
                end
            end
            default: state <= S_IDLE;
            endcase
            // results that complete in the background of S_RUN
            if (mac_done) begin
                if (d_out_i32[0]) acc_mem[(d_out + r_q) % ACC_DEPTH] <= mac_result;
                else begin
                    act_code[(d_out + r_q) % ACT_DEPTH] <= rq_code;
                    act_lvl[(d_out + r_q) % ACT_DEPTH] <= rq_level;
                end
            end
            if (gap_valid) begin
                act_lvl[(d_out + gap_c) % ACT_DEPTH] <= gap_avg;
                act_code[(d_out + gap_c) % ACT_DEPTH] <= gap_avg;
                gap_c <= gap_c + 1;
            end
        end
    end

    function [31:0] count_ones;
        input [P-1:0] v;
        integer i;
        begin
            count_ones = 0;
            for (i = 0; i < P; i = i + 1) count_ones = count_ones + v[i];
        end
    endfunction
endmodule
`default_nettype wire
